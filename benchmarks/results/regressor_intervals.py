"""The regressor's predictive intervals (session 31): coverage of the central 90% range of ``predict_quantiles``
(50 draws) on test rows, its interval score (width + 20 x the miss beyond either end, in the test targets' std;
lower is better, a proper score of a central 90% interval; session 32) and the point prediction's R², with the trees
(tree_weight="auto") and without (0).
Run from the repository root: python benchmarks/results/regressor_intervals.py [splits] [weights, e.g. auto,0]"""
import sys

sys.path.insert(0, "benchmarks")
import numpy as np
import pandas as pd
import torch

torch.set_num_threads(1)
import classification as C

from icl_diffusion.estimators import DiffusionRegressor

splits = int(sys.argv[1]) if len(sys.argv) > 1 else 3
weights = [w if w == "auto" else float(w) for w in (sys.argv[2] if len(sys.argv) > 2 else "auto,0").split(",")]
tables, _ = C.load_tables([n for n in C.TABLES])
rows = []
for name, (x, y, task) in tables.items():
    if task != "regression":
        continue
    y = y.to_numpy(np.float64)
    for seed in range(splits):
        x_tr, y_tr, x_te, y_te = C.split(x, y, task, seed, 1024)
        for weight in weights:
            est = DiffusionRegressor(random_state=seed, device="cpu", max_context_rows=512, tree_weight=weight)
            est.fit(x_tr, y_tr)
            lo, hi = est.predict_quantiles(x_te, (0.05, 0.95), n_samples=50).T
            rows.append({"table": name, "split": seed, "tree_weight": str(weight), "w": est.tree_weight_,
                         "cover90": float(((y_te >= lo) & (y_te <= hi)).mean()),
                         "interval_score": float((hi - lo + 20 * (np.maximum(lo - y_te, 0) + np.maximum(y_te - hi, 0)))
                                                 .mean() / y_te.std()),
                         "r2": C.regression_scores(y_te, est.predict(x_te))["r2"]})
            print(rows[-1], flush=True)
df = pd.DataFrame(rows)
print(df.pivot_table(index="table", columns="tree_weight", values=["cover90", "interval_score", "r2", "w"]).round(3).to_string())
print(df.groupby("tree_weight")[["cover90", "interval_score", "r2"]].mean().round(4).to_string())
