"""Seconds of the point estimate with each tree's random stream made afresh (``np.random.RandomState(seed)``, before
session 53) or reseeded (``tree_regression._stream``), alternating on the same masks, one thread; the outputs' sums
must agree. Session 53, benchmarks/results/speed_e2e.md. Run from the repository root:

    OMP_NUM_THREADS=1 python benchmarks/results/stream_cost.py
"""

import sys
import time

import numpy as np
import torch

sys.path.insert(0, ".")
sys.path.insert(0, "benchmarks")
from common import gaussian_table, load_real_table, make_mask

from icl_diffusion import DiffusionImputer
from icl_diffusion import tree_regression as trees

STREAMS = {"made": lambda seed: np.random.RandomState(seed), "reseeded": trees._stream}

torch.set_num_threads(1)
imputer = DiffusionImputer(random_state=0)
seconds = {label: [] for label in STREAMS}
for name in ("boston", "college", "guns", "gaussian1000x20"):
    table = gaussian_table(1000, 20, n_factors=5, seed=0).x if name.startswith("gaussian") else load_real_table(name).x
    for mechanism in ("mcar", "mar"):
        x = np.where(make_mask(table, mechanism, 0.3, np.random.default_rng(0)), np.nan, table)
        sums = {}
        for label in (*STREAMS, *STREAMS):  # each twice, alternating
            trees._stream = STREAMS[label]
            start = time.perf_counter()
            out = imputer.fit_transform(x)
            seconds[label].append(time.perf_counter() - start)
            sums.setdefault(label, float(np.sum(out)))
        print(name, mechanism, {k: round(float(np.mean(v[-2:])), 3) for k, v in seconds.items()}, sums, flush=True)
print("mean", {k: round(float(np.mean(v)), 3) for k, v in seconds.items()})
