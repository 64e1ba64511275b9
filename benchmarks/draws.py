"""Multiple imputation: are the draws worth their cost? Calibration and seconds of 20 imputations.

On Gaussian tables the exact conditional distribution of every missing cell is known (mean and variance
under the table's true covariance), so the draws can be judged against it:

- ``mean/oracle``: RMSE of the mean of the draws over the RMSE of the exact conditional mean (1.0 optimal);
- ``spread``: mean std of the draws over the mean exact conditional std (1.0 = right width; < 1 overconfident);
- ``cover90``: share of true values inside the draws' 5%-95% range (``np.quantile``). Even a perfect sampler's
  empirical range is narrower than its distribution's: with 20 draws it covers 0.817 (``perfect_cover90``,
  printed with the table; 10 draws: 0.757, 50: 0.866);
- ``PIT90``: share of true values whose rank among the draws, (#draws below + U (#draws equal + 1)) / (D + 1)
  with U uniform (ties with the truth, as a discrete column's draws have, spread over their ranks), lies in
  [0.05, 0.95]: exactly 0.9 in expectation for a perfect sampler at any number of draws D;
- ``CRPS``: the continuous ranked probability score of the draws (lower is better; a proper score, so it
  rewards both accuracy and calibration); ``oracle CRPS`` is that of the exact Gaussian;
- ``joint``: for two missing cells of one row, the slope of their draws' correlation on their exact conditional
  correlation, over all such pairs (1 = dependent as they should be; 0 = independent per cell);
- ``spread corr``: per column, the correlation over its missing cells of the draws' sd with the exact conditional
  sd given the row's pattern, averaged over columns (``evaluation.spread_correlation``; near 0 for draws of one
  width per column; 20 draws' sds are noisy, so even exact draws stay well below 1).

On every table: ``NRMSE mean`` (of the mean of the draws) and ``NRMSE 1 draw`` (mean over the draws of one
draw's NRMSE), in complete-data std units. On real tables (no oracle) the oracle columns are empty. Peers run
in the same process on the same masks: MICE with posterior sampling (IterativeImputer(sample_posterior=True),
one seed per draw).

    python benchmarks/draws.py                       # ~15 min on 1 thread
    python benchmarks/draws.py --steps 2,5,10 --variance-mix 0.5 --seeds 0
    python benchmarks/draws.py --steps 5 --variance-mix 0.65 --seeds 0 \
        --variants "share_first_call=0;share_first_call=1"    # sampler settings (SamplerConfig fields)
    python benchmarks/draws.py --steps checkpoint --variants "draw_steps=5,variance_mix=0.65;"  # draw defaults
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/draws.py`

from benchmarks.common import gaussian_table, load_real_table, make_mask, markdown_table, resolve_checkpoint


def crps(draws: np.ndarray, truth: np.ndarray) -> float:
    """Mean CRPS over cells of an ensemble (D, n) against truth (n,): E|X - y| - 0.5 E|X - X'|."""
    d = np.sort(draws, axis=0)
    D = d.shape[0]
    # E|X - X'| of an ensemble from its order statistics: 2 / D^2 * sum_i (2i - D - 1) x_(i).
    weights = (2 * np.arange(1, D + 1) - D - 1)[:, None]
    spread = 2 * (weights * d).sum(0) / D**2
    return float((np.abs(d - truth).mean(0) - 0.5 * spread).mean())


def perfect_cover90(n_draws: int, cells: int = 200_000) -> float:
    """cover90 of a perfect sampler: truth and draws i.i.d., simulated (the empirical range is narrower)."""
    rng = np.random.default_rng(0)
    lo, hi = np.quantile(rng.standard_normal((n_draws, cells)), [0.05, 0.95], axis=0)
    y = rng.standard_normal(cells)
    return float(((y >= lo) & (y <= hi)).mean())


def gaussian_crps(mean: np.ndarray, std: np.ndarray, truth: np.ndarray) -> float:
    from scipy.stats import norm

    z = (truth - mean) / std
    return float((std * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))).mean())


def parse_variant(text: str) -> dict:
    """SamplerConfig overrides from "field=value,field=value" (values as the field's type, a tuple's items
    joined by "+", e.g. "ensemble=identity+yeo_johnson"; "" = none)."""
    from icl_diffusion.sampling import SamplerConfig

    types = {f.name: type(f.default) for f in dataclasses.fields(SamplerConfig)}
    out = {}
    for item in filter(None, text.split(",")):
        name, value = item.split("=")
        out[name] = (bool(int(value)) if types[name] is bool else tuple(value.split("+")) if types[name] is tuple
                     else types[name](value))
    return out


def with_sampler(pretrained, overrides: dict):
    """The same model with its stored sampler settings (``SamplerConfig``) overridden."""
    return dataclasses.replace(pretrained, sampler=dataclasses.replace(pretrained.sampler, **overrides))


def icl_draws(pretrained, n_steps: int | None, n_draws: int, variance_mix: float | None = None):
    """DiffusionImputer.sample with the conditional sampler; ``n_steps`` None: the checkpoint's draw settings
    (``SamplerConfig``: draw method, steps and variance mix), ``variance_mix`` None: the checkpoint's."""

    def draw(x: np.ndarray, seed: int) -> np.ndarray:
        from icl_diffusion.estimators import DiffusionImputer

        settings = {} if n_steps is None else {"method": "conditional", "n_steps": n_steps}
        imp = DiffusionImputer(checkpoint=pretrained, device="cpu", random_state=seed, variance_mix=variance_mix,
                               **settings)
        return np.stack(imp.fit(x).sample(x, n_imputations=n_draws))

    return draw


def mice_draws(n_draws: int):
    def draw(x: np.ndarray, seed: int) -> np.ndarray:
        from sklearn.experimental import enable_iterative_imputer  # noqa: F401
        from sklearn.impute import IterativeImputer

        return np.stack([IterativeImputer(max_iter=10, sample_posterior=True, random_state=seed * 1000 + d)
                         .fit_transform(x) for d in range(n_draws)])

    return draw


def score(draws: np.ndarray, x: np.ndarray, missing: np.ndarray, table) -> dict[str, float]:
    y, ens = x[missing], draws[:, missing]
    lo, hi = np.quantile(ens, [0.05, 0.95], axis=0)
    rmse = lambda e: float(np.sqrt(np.mean(e**2)))
    # A draw equal to the truth (a discrete column's draws, ``snap_draws``) is equal up to float32 round-off.
    equal = np.isclose(ens, y, rtol=1e-5, atol=1e-6)
    u = np.random.default_rng(0).random(y.shape)
    pit = (((ens < y) & ~equal).sum(0) + u * (equal.sum(0) + 1)) / (len(ens) + 1)
    inside = (y >= lo - 1e-5 * np.abs(lo) - 1e-6) & (y <= hi + 1e-5 * np.abs(hi) + 1e-6)  # the same round-off
    out = {"NRMSE mean": rmse(ens.mean(0) - y), "NRMSE 1 draw": float(np.mean([rmse(d - y) for d in ens])),
           "cover90": float(inside.mean()), "PIT90": float(((pit >= 0.05) & (pit <= 0.95)).mean()),
           "CRPS": crps(ens, y)}
    if table.cov is not None:
        import torch

        from icl_diffusion.evaluation import joint_slope, spread_correlation
        from priors.gaussian import conditional_gaussian

        mean, var = conditional_gaussian(torch.from_numpy(table.mean), torch.from_numpy(table.cov),
                                         torch.from_numpy(x), torch.from_numpy(~missing))
        mean, std = mean.numpy()[missing], var.numpy()[missing] ** 0.5
        out["mean/oracle"] = rmse(ens.mean(0) - y) / rmse(mean - y)
        out["spread"] = float(ens.std(0).mean() / std.mean())
        out["oracle CRPS"] = gaussian_crps(mean, std, y)
        out["joint"] = joint_slope(draws, missing, table.cov)
        out["spread corr"] = spread_correlation(draws, missing, table.cov)
    return out




def make_table(name: str, seed: int):
    """"gaussianNxF" (a seeded synthetic table) or a real table's key."""
    if name.startswith("gaussian"):
        n_rows, n_features = (int(v) for v in name.removeprefix("gaussian").split("x"))
        return gaussian_table(n_rows, n_features, seed=seed)
    return load_real_table(name)


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments every draws benchmark takes (this one and ``draws_categorical.py``); ``begin`` their common start."""
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--variants", default="", help='sampler settings to compare, ";"-separated SamplerConfig '
                   'overrides, e.g. "share_first_call=0;share_first_call=1" ("" = the checkpoint\'s)')
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="CSV of every run")


def begin(args):
    """Threads set, the checkpoint resolved and described: (pretrained, [(variant, its pretrained)])."""
    import torch

    torch.set_num_threads(args.threads)
    pretrained, desc, _ = resolve_checkpoint(args.checkpoint)
    print(f"checkpoint: {desc}; {args.draws} draws; {args.threads} thread(s)\n", flush=True)
    return pretrained, [(v, with_sampler(pretrained, parse_variant(v))) for v in args.variants.split(";")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p)
    p.add_argument("--steps", default="5,10", help='conditional-sampler steps to compare; "checkpoint": the '
                   "checkpoint's (or variant's) draw settings, --variance-mix ignored")
    p.add_argument("--variance-mix", default="0,0.5", help="sampler variance mixes to compare (0 = beta_tilde)")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--tables", default="gaussian500x10,boston",
                   help="gaussianNxF (synthetic, oracle known) or benchmarks.common.REAL_TABLES keys")
    p.add_argument("--mechs", default="mcar,mar")
    p.add_argument("--rate", type=float, default=0.3, help="share of cells hidden")
    p.add_argument("--no-mice", action="store_true", help="skip the MICE peer")
    args = p.parse_args()
    _, variants = begin(args)
    methods = {}
    for variant, pre in variants:
        tail = f", {variant}" if variant else ""
        if args.steps == "checkpoint":
            t = pre.sampler
            methods[f"icl {t.draw_method} {t.draw_steps} steps, variance mix {t.variance_mix}{tail}"] = icl_draws(
                pre, None, args.draws)
            continue
        for s in args.steps.split(","):
            for v in args.variance_mix.split(","):
                methods[f"icl conditional {s} steps, variance mix {v}{tail}"] = icl_draws(pre, int(s), args.draws,
                                                                                         float(v))
    if not args.no_mice:
        methods["MICE sample_posterior"] = mice_draws(args.draws)
    mechs = args.mechs.split(",")
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for table in (make_table(name, seed) for name in args.tables.split(",")):
            for mech in mechs:
                missing = make_mask(table.x, mech, args.rate, np.random.default_rng(seed))
                x_in = np.where(missing, np.nan, table.x)
                for name, draw in methods.items():
                    start = time.perf_counter()
                    draws = draw(x_in, seed)
                    secs = time.perf_counter() - start
                    assert np.array_equal(draws[:, ~missing], np.broadcast_to(table.x[~missing], draws[:, ~missing].shape))
                    runs.append({"table": table.name, "mech": mech, "seed": seed, "method": name, "seconds": secs,
                                 **score(draws, table.x, missing, table)})
                    print(runs[-1], flush=True)
    keys = ["NRMSE mean", "NRMSE 1 draw", "mean/oracle", "spread", "cover90", "PIT90", "CRPS", "oracle CRPS", "joint",
            "spread corr", "seconds"]
    rows = []
    for table in dict.fromkeys(r["table"] for r in runs):
        for mech in mechs:
            for name in methods:
                sel = [r for r in runs if (r["table"], r["mech"], r["method"]) == (table, mech, name)]
                rows.append([table, mech, name, *(f"{np.mean([r[k] for r in sel]):.3f}" if k in sel[0] else ""
                                                  for k in keys)])
    print(f"\n{args.rate:.0%} missing, mean over seeds {args.seeds}; a perfect sampler's {args.draws}-draw 5%-95% range "
          f"covers {perfect_cover90(args.draws):.3f} of true values (cover90), its PIT90 is 0.900\n")
    print(markdown_table(["table", "mech", "method", *keys], rows))
    if args.out:
        import csv

        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=sorted({k for r in runs for k in r}))
            w.writeheader()
            w.writerows(runs)


if __name__ == "__main__":
    main()
