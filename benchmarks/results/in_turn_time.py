"""Session 45: seconds of the point estimate (best of two, one thread, 30% MCAR, seed 0) on a 1,000 x 20 Gaussian
table and AER/Guns with the trees' sweeps refitting every column at once (``tree_regression.IN_TURN`` False) and in
turn (True), alternating in one process.

    python benchmarks/results/in_turn_time.py
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import gaussian_table, load_real_table, make_mask
from icl_diffusion import DiffusionImputer, tree_regression

torch.set_num_threads(1)
tables = {"gaussian1000x20": gaussian_table(1000, 20, n_factors=5, seed=0).x,
          "guns": load_real_table("guns", max_rows=1000).x}
for name, truth in tables.items():
    x = np.where(make_mask(truth, "mcar", 0.3, np.random.default_rng(0)), np.nan, truth)
    imputer = DiffusionImputer(random_state=0)
    imputer.fit_transform(x[:200])  # warm-up
    seconds = {False: [], True: []}
    for _ in range(2):
        for flag in (False, True):
            tree_regression.IN_TURN = flag
            start = time.perf_counter()
            imputer.fit_transform(x)
            seconds[flag].append(time.perf_counter() - start)
    print(name, {f"in turn {k}": round(min(v), 2) for k, v in seconds.items()}, flush=True)
