"""Headroom on a benchmark-(a) table (benchmarks/finetune.py's protocol, ``one_table``): the model before
fine-tuning, MissForest-mixed, mode/mean, and gradient boosting per numeric column fitted on the 70% rows and
given every other cell of the held-out rows (more than any imputer gets there).

    python benchmarks/results/finetune_s6/headroom.py guns|diamonds|nmes1988
"""
import sys
import time

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
import finetune as bench
from categorical import missforest_mixed, mode_mean, score
from sklearn.ensemble import HistGradientBoostingRegressor

from icl_diffusion import DiffusionImputer

torch.set_num_threads(1)
name = sys.argv[1]
df, test, missing, holey, mean, std = bench.one_table(name)
cats = [c for c in df.columns if str(df[c].dtype) == "category"]
for m, f in [("before", lambda d: DiffusionImputer(random_state=0).fit_transform(d)),
             ("missforest", lambda d: missforest_mixed(d, 0)), ("mode_mean", mode_mean)]:
    t = time.perf_counter()
    acc, err = score(f(holey), df, missing, mean, std)
    print(name, m, f"acc {acc:.3f} nrmse {err:.4f} {time.perf_counter() - t:.1f}s", flush=True)
X = df.copy()
for c in cats:
    X[c] = X[c].cat.codes
X = X.to_numpy(float)
sq, k = 0.0, 0
for j, c in enumerate(df.columns):
    if c in cats:
        continue
    o = [i for i in range(X.shape[1]) if i != j]
    m = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05).fit(X[~test][:, o], X[~test, j])
    r = missing[:, j]
    e = (m.predict(X[r][:, o]) - X[r, j]) / std[j]
    sq += (e ** 2).sum()
    k += len(e)
    print(" ", c, round(float(np.sqrt((e ** 2).mean())), 3))
print(name, "GB headroom pooled NRMSE (all other cells observed):", round(float(np.sqrt(sq / k)), 4))
