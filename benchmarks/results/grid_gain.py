"""Paired gain of one ``imputation.py`` runs file over another on the same masks (session 47): the mean and standard
error of reference NRMSE - new NRMSE over the rows both hold (> 0: the new one is better), the summed seconds, the gain
per table and per mechanism, and with a third argument every (table, mechanism, rate), worst first.

    python benchmarks/results/grid_gain.py REFERENCE.runs.csv NEW.runs.csv [rows]
"""
import sys

import pandas as pd

keys = ["dataset", "mechanism", "rate", "seed"]
ref, new = (pd.read_csv(path)[keys + ["nrmse", "seconds"]] for path in sys.argv[1:3])
both = ref.merge(new, on=keys, suffixes=("_ref", "_new"))
both = both[both.dataset != "gaussian"]
gain = both.nrmse_ref - both.nrmse_new
print(f"{len(both)} rows: gain {gain.mean():+.4f} (se {gain.std() / len(both) ** 0.5:.4f}), "
      f"seconds {both.seconds_ref.sum():.0f} -> {both.seconds_new.sum():.0f}")
both["gain"] = gain
print("by table:", both.groupby("dataset").gain.mean().round(4).to_dict())
print("by mechanism:", both.groupby("mechanism").gain.mean().round(4).to_dict())
if len(sys.argv) > 3:
    print(both.groupby(["dataset", "mechanism", "rate"]).gain.mean().round(3).sort_values().to_string())
