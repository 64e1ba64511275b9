"""Seconds of ``DiffusionClassifier`` and ``DiffusionRegressor``'s fit + predict (best of 2, one thread) on
scikit-learn's breast_cancer (569 x 30) and friedman1 (800 x 10), 70% of the rows to fit, and a checksum of the
predictions (the same for an engine that predicts the same). Session 38.

    python benchmarks/results/predictor_time.py
"""

import time

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, make_friedman1

from icl_diffusion import DiffusionClassifier, DiffusionRegressor

torch.set_num_threads(1)
tables = {"classifier, breast_cancer 569 x 30": (DiffusionClassifier, *load_breast_cancer(return_X_y=True)),
          "regressor, friedman1 800 x 10": (DiffusionRegressor, *make_friedman1(800, 10, random_state=0))}
lines = []
for name, (estimator, x, y) in tables.items():
    order = np.random.default_rng(0).permutation(len(x))
    fit, test = order[: int(0.7 * len(x))], order[int(0.7 * len(x)):]
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        predictions = estimator(random_state=0).fit(x[fit], y[fit]).predict(x[test])
        seconds.append(time.perf_counter() - start)
    lines.append(f"{name}: best {min(seconds):.2f} s, checksum {float(np.sum(predictions)):.6f}")
print(" | ".join(lines))
