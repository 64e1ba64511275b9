"""Experiment (session 47): gradient-boosted trees per column with scikit-learn's native missing values
(``HistGradientBoostingRegressor``, one pass over the table with its holes, no fill) against MissForest-like on the
real grid's masks (30%, seed 0). Run from the repository root; benchmarks/results/imputation.md, session 47.

    OMP_NUM_THREADS=1 python benchmarks/results/hgb_alone.py boston,guns,auto,quakes,college,close_college mcar,mar
"""
import sys
import time
import zlib

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
from common import load_real_table, make_mask, missforest_imputer, nrmse
from sklearn.ensemble import HistGradientBoostingRegressor

torch.set_num_threads(1)


def hgb(x, miss, iters, leaves, lr, seed=0):
    mu, sd = np.nanmean(x, 0), np.nanstd(x, 0) + 1e-9
    z = (x - mu) / sd
    out = z.copy()
    for d in range(z.shape[1]):
        m = miss[:, d]
        if not m.any(): continue
        f = np.delete(z, d, axis=1)
        r = HistGradientBoostingRegressor(max_iter=iters, max_leaf_nodes=leaves, learning_rate=lr,
                                          early_stopping=False, random_state=seed).fit(f[~m], z[~m, d])
        out[m, d] = r.predict(f[m])
    return out * sd + mu


tables = sys.argv[1].split(",")
mechs = sys.argv[2].split(",") if len(sys.argv) > 2 else ["mcar", "mar", "mnar"]
res = {}
for name in tables:
    tab = load_real_table(name)
    for mech in mechs:
        for rate in (0.3,):
            for seed in (0,):
                rng = np.random.default_rng([seed, zlib.crc32(f"{tab.name}/{mech}/{rate}".encode())])
                miss = make_mask(tab.x, mech, rate, rng)
                x = np.where(miss, np.nan, tab.x)
                line = []
                for label, kw in (("h50", (50, 15, 0.1)), ("h100", (100, 31, 0.1)), ("h200", (200, 15, 0.05))):
                    t = time.perf_counter(); e = nrmse(hgb(x, miss, *kw), tab.x, miss)
                    res.setdefault(label, []).append(e); line.append(f"{label}={e:.3f}({time.perf_counter()-t:.1f}s)")
                t = time.perf_counter(); e = nrmse(missforest_imputer()(x, seed), tab.x, miss)
                res.setdefault("mf", []).append(e); line.append(f"mf={e:.3f}({time.perf_counter()-t:.1f}s)")
                print(name, mech, rate, seed, x.shape, " ".join(line), flush=True)
for k, v in res.items(): print(k, round(float(np.mean(v)), 4))
