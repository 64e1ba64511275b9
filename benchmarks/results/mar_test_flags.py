"""The MAR test's flags (``inference.missing_by_others``) on the real grid's masks (seeds 0-2), for four null models
of the missingness: the column's linear prediction from the others (session 43's test, ``lin``), with its square and
cube (``poly``: the variant tried in session 54), with a cross-fitted gradient-boosting prediction (``trees``), and
with both (``trees_poly``). Prints the share of the MAR-masked and of the MNAR columns flagged at p < 10^-3 ... 10^-15
(a MAR column flagged keeps its inputs' levels in the blend; an MNAR one flagged loses the network's reading of its
shift) and writes every column's -log10 p to ``--out``. Session 54, about 3 minutes on one core.

    python benchmarks/results/mar_test_flags.py [--out flags.csv]
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import f as f_distribution
from sklearn.ensemble import HistGradientBoostingRegressor

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import REAL_TABLES, benchmark_mask, load_real_table

THRESHOLDS = (3, 5, 8, 10, 15)


def residual(design: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    coef, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    r = y - design @ coef
    return float(r @ r), int(rank)


def minus_log10_p(z: np.ndarray, seen: np.ndarray, j: int, curve: list[np.ndarray]) -> float:
    """The F test of ``missing_by_others`` for column j (z: standardized, unknown cells 0), its null model the linear
    prediction plus the ``curve`` columns (N,), which the full model gets as well."""
    n = len(z)
    missing, observed = (~seen[:, j]).astype(float), seen[:, j]
    design = np.column_stack([np.ones(n), np.delete(z, j, 1)])
    prediction = design @ np.linalg.lstsq(design[observed], z[observed, j], rcond=None)[0]
    full, rank = residual(np.column_stack([design, *curve]), missing)
    alone, alone_rank = residual(np.column_stack([np.ones(n), prediction, *curve]), missing)
    extra, dof = rank - alone_rank, n - rank
    if extra < 1 or dof < 1 or full <= 0:
        return 0.0
    statistic = (alone - full) / extra / (full / dof)
    return -f_distribution.logsf(statistic, extra, dof) / math.log(10)


def boosted_prediction(z_nan: np.ndarray, j: int, seed: int) -> np.ndarray:
    """(N,) column j predicted from the others (NaN where unknown) by gradient boosting, cross-fitted on two folds of
    its observed rows (an in-sample fit would separate observed from missing rows by itself)."""
    n, observed = len(z_nan), ~np.isnan(z_nan[:, j])
    others = np.delete(z_nan, j, 1)
    rows = np.flatnonzero(observed)
    fold = np.random.default_rng(seed).permutation(len(rows)) % 2
    out, on_missing = np.zeros(n), []
    for f in range(2):
        fit = HistGradientBoostingRegressor(max_iter=100, random_state=seed).fit(others[rows[fold != f]],
                                                                                 z_nan[rows[fold != f], j])
        out[rows[fold == f]] = fit.predict(others[rows[fold == f]])
        on_missing.append(fit.predict(others[~observed]))
    out[~observed] = np.mean(on_missing, 0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="mar_test_flags.csv")
    args = p.parse_args()
    records = []
    for name in REAL_TABLES:
        table = load_real_table(name)
        for mechanism in ("mar", "mnar"):
            for rate in (0.1, 0.3, 0.5):
                for seed in (0, 1, 2):  # the grid's masks (benchmarks/imputation.py)
                    missing = benchmark_mask(table.x, table.name, mechanism, rate, seed)
                    x = np.where(missing, np.nan, table.x)
                    z_nan = (x - np.nanmean(x, 0)) / np.nanstd(x, 0)
                    z, seen = np.nan_to_num(z_nan), ~missing
                    for j in np.flatnonzero(missing.any(0)):
                        boosted = boosted_prediction(z_nan, j, seed)
                        linear = np.column_stack([np.ones(len(z)), np.delete(z, j, 1)])
                        fitted = linear @ np.linalg.lstsq(linear[seen[:, j]], z[seen[:, j], j], rcond=None)[0]
                        curves = {"lin": [], "poly": [fitted ** 2, fitted ** 3], "trees": [boosted],
                                  "trees_poly": [boosted, boosted ** 2, fitted ** 2]}
                        records.append({"dataset": name, "mechanism": mechanism, "rate": rate, "seed": seed,
                                        "column": j, **{k: minus_log10_p(z, seen, j, c) for k, c in curves.items()}})
        print(name, flush=True)
    flags = pd.DataFrame(records)
    flags.to_csv(args.out, index=False)
    for null in ("lin", "poly", "trees", "trees_poly"):
        for threshold in THRESHOLDS:
            share = (flags[null] > threshold).groupby(flags["mechanism"]).mean()
            print(f"{null:11s} p < 1e-{threshold:<2d} MAR columns flagged {share['mar']:.2f}, MNAR {share['mnar']:.2f}")


if __name__ == "__main__":
    main()
