"""Seconds per point estimate of the mixed tables with and without the trees' class probabilities
(``inference.CATEGORICAL_TREES``, session 30), alternating on each mask (8 tables x MCAR / MAR 30%, seed 0; one
thread), and the accuracy each gets there.

    python benchmarks/results/level_trees_cost.py
"""

import sys
import time
import zlib

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
import categorical
from common import diffusion_imputer, make_mask, resolve_checkpoint

from icl_diffusion import inference

torch.set_num_threads(1)
imputer = diffusion_imputer(resolve_checkpoint(None)[0], max_context_rows=512)
seconds, accuracy = {True: [], False: []}, {True: [], False: []}
for key in categorical.TABLES:
    df, _ = categorical.load_table(key, 1000)
    z, mean, std = categorical.numeric_image(df)
    for mech in ("mcar", "mar"):
        rng = np.random.default_rng([0, zlib.crc32(f"{key}/{mech}/0.3".encode())])
        missing = make_mask(z, mech, 0.3, rng)
        for flag in (False, True):
            inference.CATEGORICAL_TREES = flag
            start = time.perf_counter()
            filled = imputer(df.mask(missing), 0)
            seconds[flag].append(time.perf_counter() - start)
            accuracy[flag].append(categorical.score(filled, df, missing, mean, std)[0])
    print(key, {f"trees={k}": round(float(np.mean(v[-2:])), 3) for k, v in seconds.items()}, flush=True)
print("mean seconds", {f"trees={k}": round(float(np.mean(v)), 3) for k, v in seconds.items()})
print("mean accuracy", {f"trees={k}": round(float(np.nanmean(v)), 4) for k, v in accuracy.items()})
