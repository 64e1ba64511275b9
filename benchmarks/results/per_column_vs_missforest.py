"""Session 39: where the point estimate loses to MissForest-like, column by column. Both impute the grid's real
tables (at most 1,000 rows) under MCAR and MAR at 30%, seeds 0-1, on the same masks; per column the mean squared
error over its hidden cells (standardized units), and by group of columns: at most 10 distinct values (dummies,
ordinal scores), 11-60, more.

    python benchmarks/results/per_column_vs_missforest.py [CHECKPOINT]

Writes benchmarks/results/per_column_vs_missforest.csv (one row per table, column, mechanism and seed) and prints
the groups' means, the few-level columns and the continuous columns by ratio.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (
    REAL_TABLES,
    diffusion_imputer,
    load_real_table,
    make_mask,
    missforest_imputer,
    resolve_checkpoint,
)

OUT = Path(__file__).with_suffix(".csv")


def main() -> None:
    torch.set_num_threads(1)
    pretrained, _, _ = resolve_checkpoint(sys.argv[1] if len(sys.argv) > 1 else None)
    icl, mf = diffusion_imputer(pretrained), missforest_imputer()
    rows = []
    for key in REAL_TABLES:
        t = load_real_table(key, max_rows=1000)
        for mech in ("mcar", "mar"):
            for seed in (0, 1):
                missing = make_mask(t.x, mech, 0.3, np.random.default_rng(seed))
                x = np.where(missing, np.nan, t.x)
                a, b = icl(x, seed), mf(x, seed)
                for j, name in enumerate(t.columns):
                    m = missing[:, j]
                    if m.sum() >= 5:
                        rows.append((key, name, len(np.unique(t.x[:, j])), mech, seed, int(m.sum()),
                                     ((a[m, j] - t.x[m, j]) ** 2).mean(), ((b[m, j] - t.x[m, j]) ** 2).mean()))
    d = pd.DataFrame(rows, columns=["table", "column", "distinct", "mech", "seed", "cells", "mse_icl", "mse_mf"])
    d.to_csv(OUT, index=False)
    d["group"] = np.where(d.distinct <= 10, "<=10", np.where(d.distinct <= 60, "11-60", ">60"))
    g = d.groupby("group").agg(cols=("column", "size"), mse_icl=("mse_icl", "mean"), mse_mf=("mse_mf", "mean"))
    g["ratio"] = g.mse_icl / g.mse_mf
    print(g.round(4))
    print(d[d.distinct <= 10].groupby(["table", "column", "distinct"])[["mse_icl", "mse_mf"]].mean().round(3))
    c = d[d.distinct > 60].groupby(["table", "column"])[["mse_icl", "mse_mf"]].mean()
    c["ratio"] = c.mse_icl / c.mse_mf
    print(c.sort_values("ratio").round(3).to_string())


if __name__ == "__main__":
    main()
