"""Seconds of ``DiffusionImputer``'s point estimate (best of 3) on a Gaussian table, 30% MCAR, at a thread count,
and a checksum of the output (the same on any thread count). Session 32.

    python benchmarks/results/point_estimate_time.py ROWS FEATURES THREADS
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import gaussian_table, make_mask
from icl_diffusion import DiffusionImputer

n_rows, n_features, threads = map(int, sys.argv[1:4])
torch.set_num_threads(threads)
x = gaussian_table(n_rows, n_features).x
x = np.where(make_mask(x, "mcar", 0.3, np.random.default_rng(0)), np.nan, x)
imputer = DiffusionImputer(random_state=0)
imputer.fit_transform(x[:200])  # warm-up
seconds = []
for _ in range(3):
    start = time.perf_counter()
    out = imputer.fit_transform(x)
    seconds.append(time.perf_counter() - start)
print(f"{n_rows} x {n_features}, {threads} threads: best {min(seconds):.2f} s, checksum {float(np.sum(out))!r}")
