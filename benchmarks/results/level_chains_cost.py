"""Session 44: seconds of the point estimate on four mixed tables (30% MCAR, seed 0, two repeats) with the categorical
classifiers on the Gaussian estimate (``tree_regression.LEVEL_CHAINS`` False) and on the numeric chains' fills (True).

    python benchmarks/results/level_chains_cost.py
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import categorical

from icl_diffusion import DiffusionImputer, tree_regression

torch.set_num_threads(1)
out = {False: [], True: []}
for key in ["creditcard", "nmes1988", "college", "penguins"]:
    df, _ = categorical.load_table(key, 1000)
    rng = np.random.default_rng(0)
    holes = rng.random(df.shape) < 0.3
    x = df.mask(holes)
    imp = DiffusionImputer(random_state=0)
    for rep in range(2):
        for flag in (False, True):
            tree_regression.LEVEL_CHAINS = flag
            s = time.perf_counter(); imp.fit_transform(x); out[flag].append((key, time.perf_counter() - s))
for flag, v in out.items():
    print(flag, [(k, round(t, 2)) for k, t in v], round(sum(t for _, t in v), 2))
