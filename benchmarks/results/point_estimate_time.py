"""Seconds of ``DiffusionImputer``'s point estimate (best of 3) on a Gaussian table, 30% MCAR, at a thread count,
its NRMSE on the hidden cells and a checksum of the output (the same on any thread count). Session 32.

    python benchmarks/results/point_estimate_time.py ROWS FEATURES THREADS [blend_inputs=0]
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import gaussian_table, make_mask, nrmse
from icl_diffusion import DiffusionImputer

n_rows, n_features, threads = map(int, sys.argv[1:4])
settings = {k: bool(int(v)) for k, v in (a.split("=") for a in sys.argv[4:])}
torch.set_num_threads(threads)
truth = gaussian_table(n_rows, n_features, n_factors=5, seed=0).x  # speed.py's end-to-end tables
missing = make_mask(truth, "mcar", 0.3, np.random.default_rng(0))
x = np.where(missing, np.nan, truth)
imputer = DiffusionImputer(random_state=0, **settings)
imputer.fit_transform(x[:200])  # warm-up
seconds = []
for _ in range(3):
    start = time.perf_counter()
    out = imputer.fit_transform(x)
    seconds.append(time.perf_counter() - start)
error = nrmse(out, truth, missing)
print(f"{n_rows} x {n_features}, {threads} threads, {settings or 'defaults'}: best {min(seconds):.2f} s, "
      f"NRMSE {error:.4f}, checksum {float(np.sum(out))!r}")
