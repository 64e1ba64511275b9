"""Experiment (session 30): the engine's trees alone (sweeps of extremely randomized trees over the Gaussian-filled
table, no network, no blend) against MissForest-like on the real grid's masks (30% MCAR and MAR, seeds 0-1): does
the trees' recipe (sweeps, split candidates, Jacobi vs Gauss-Seidel order, fill) leave accuracy to MissForest?

    python benchmarks/results/trees_alone.py guns,boston,quakes,auto

Run from the repository root; benchmarks/results/imputation.md, session 30, has the run."""
import sys
import time

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
from common import load_real_table, make_mask, missforest_imputer, nrmse
from sklearn.ensemble import ExtraTreesRegressor

from icl_diffusion.gaussian_feature import converged_em, gaussian_estimate, table_gaussian

torch.set_num_threads(1)

def gaussian_fill(xz, known):
    x = torch.as_tensor(np.where(known, xz, 0.0))[None]
    k = torch.as_tensor(known)[None]
    cat = torch.zeros(1, xz.shape[1], dtype=torch.bool)
    mean, cov = table_gaussian(x, k, cat, **converged_em(10))
    return gaussian_estimate(x, k, cat, cov, mean)[0].double().numpy()

def sweeps(z0, known, trees, features, order="jacobi", seed=0):
    z = z0.copy()
    F = z.shape[1]
    for t in trees:
        new = z.copy()
        for d in range(F):
            unk = ~known[:, d]
            if not unk.any(): continue
            src = new if order == "gs" else z
            feats = np.delete(src, d, axis=1)
            mf = features if isinstance(features, str) else min(features, F - 1)
            f = ExtraTreesRegressor(t, max_features=mf, random_state=seed + d).fit(feats[known[:, d]], z[known[:, d], d])
            new[unk, d] = f.predict(feats[unk])
        z = new
    return z

tables = sys.argv[1].split(",")
variants = {
  "ship 10,10,30 f16 jacobi gfill": {"trees": (10,10,30), "features": 16, "order": "jacobi", "fill": "g"},
  "10,10,30 sqrt jacobi gfill": {"trees": (10,10,30), "features": "sqrt", "order": "jacobi", "fill": "g"},
  "10,10,30 f16 gs gfill": {"trees": (10,10,30), "features": 16, "order": "gs", "fill": "g"},
  "50x5 sqrt gs meanfill (MF)": {"trees": (50,)*5, "features": "sqrt", "order": "gs", "fill": "m"},
  "10x5 f16 jacobi gfill": {"trees": (10,10,10,10,30), "features": 16, "order": "jacobi", "fill": "g"},
  "10,10,30 1.0 jacobi gfill": {"trees": (10,10,30), "features": 1.0, "order": "jacobi", "fill": "g"},
  "10,10,30 0.5 jacobi gfill": {"trees": (10,10,30), "features": 0.5, "order": "jacobi", "fill": "g"},
}
res = {k: [] for k in variants}; res["MF-like"] = []
for name in tables:
    tab = load_real_table(name, max_rows=1000)
    for mech in ("mcar", "mar"):
        for rate in (0.3,):
            for seed in (0, 1):
                miss = make_mask(tab.x, mech, rate, np.random.default_rng(seed))
                known = ~miss
                g = gaussian_fill(tab.x, known)
                m = np.where(known, tab.x, np.nanmean(np.where(known, tab.x, np.nan), 0))
                line = []
                for k, v in variants.items():
                    t = time.perf_counter()
                    z = sweeps(g if v["fill"] == "g" else m, known, v["trees"], v["features"], v["order"], seed)
                    e = nrmse(z, tab.x, miss); res[k].append(e); line.append(f"{k[:14]}={e:.3f}({time.perf_counter()-t:.1f}s)")
                t = time.perf_counter()
                e = nrmse(missforest_imputer()(np.where(miss, np.nan, tab.x), seed), tab.x, miss); res["MF-like"].append(e)
                line.append(f"MF={e:.3f}({time.perf_counter()-t:.1f}s)")
                print(name, mech, rate, seed, " ".join(line), flush=True)
for k, v in res.items():
    print(f"{k:32s} {np.mean(v):.4f}")
