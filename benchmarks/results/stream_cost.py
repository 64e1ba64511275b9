"""Seconds of the point estimate with each tree's random stream made afresh (``np.random.RandomState(seed)``, before
session 53) or reseeded (``tree_regression._stream``), alternating on the same masks, one thread; the outputs' sums
must agree. Session 53, benchmarks/results/speed_e2e.md. Run from the repository root:

    OMP_NUM_THREADS=1 python benchmarks/results/stream_cost.py
"""
import sys, time
sys.path.insert(0, '.'); sys.path.insert(0, 'benchmarks')
import numpy as np, torch
torch.set_num_threads(1)
from common import load_real_table, gaussian_table, make_mask
from icl_diffusion import DiffusionImputer, tree_regression as tr
new = tr._stream
old = lambda seed: np.random.RandomState(seed)
imp = DiffusionImputer(random_state=0)
res = {'made': [], 'reseeded': []}
for name in ['boston', 'college', 'guns', 'g']:
    t = gaussian_table(1000, 20, n_factors=5, seed=0).x if name == 'g' else load_real_table(name).x
    for mech in ['mcar', 'mar']:
        x = np.where(make_mask(t, mech, 0.3, np.random.default_rng(0)), np.nan, t)
        sums = {}
        for label, f in [('made', old), ('reseeded', new), ('made', old), ('reseeded', new)]:
            tr._stream = f
            s = time.perf_counter(); out = imp.fit_transform(x); res[label].append(time.perf_counter() - s)
            sums.setdefault(label, float(np.sum(out)))
        print(name, mech, {k: round(np.mean(v[-2:]), 3) for k, v in res.items()}, sums, flush=True)
print('mean', {k: round(np.mean(v), 3) for k, v in res.items()})
