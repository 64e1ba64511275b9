"""A screen's real-grid rows against the shipped rows, by mechanism, table and rate: the mean gain (> 0 better) of
each labelled grid.csv over ``benchmarks/results/screen/stage25/grid.csv`` on the masks they share. Session 49.

    python benchmarks/results/screen_breakdown.py LABEL=runs/screenX/NAME/grid.csv [LABEL=... ...]
"""

import sys

import pandas as pd

KEYS = ["dataset", "mechanism", "rate", "seed"]
table = pd.read_csv("benchmarks/results/screen/stage25/grid.csv")[KEYS + ["nrmse"]]
labels = []
for label, path in (a.split("=", 1) for a in sys.argv[1:]):
    table = table.merge(pd.read_csv(path)[KEYS + ["nrmse"]].rename(columns={"nrmse": label}), on=KEYS)
    table[label] = table["nrmse"] - table[label]
    labels.append(label)
print(f"{len(table)} masks")
for by in ("mechanism", "dataset", "rate"):
    print(table.groupby(by)[labels].mean().round(4), "\n")
