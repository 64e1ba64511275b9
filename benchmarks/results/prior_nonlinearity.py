"""Session 39: which prior knob brings the SCM tables' nonlinearity to the real tables'? Per column, the
cross-validated R^2 of extremely randomized trees minus ridge's from the other columns (``prior_vs_real.r2_pair``):
real columns' median -0.002 (``results/prior_vs_real_columns.csv``), stage 61's prior +0.08. Each variant of stage
61's prior: 80 SCM tables (100-400 rows x 4-14 columns, the same shapes for every variant), 3 columns each; the
median gain, its quartiles and the KS statistic against the real columns.

    python benchmarks/results/prior_nonlinearity.py      # ~8 min, one thread
"""

import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import ks_2samp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import prior_vs_real as pvr

from priors import sample_batch


def gains(cfg) -> np.ndarray:
    shapes, rng = np.random.default_rng(0), np.random.default_rng(1)
    out = []
    for b in range(40):
        n, f = int(shapes.integers(100, 400)), int(shapes.integers(4, 14))
        batch = sample_batch(cfg, torch.Generator().manual_seed(b), batch_size=2, n_rows=n, n_features=f,
                             family="scm")
        for t in range(2):
            x = pvr.finish_table(batch["x"][t].numpy().astype(np.float64)[:, ~batch["is_cat"][t].numpy()], rng)
            if x is not None:
                z = pvr.standardize(x)
                for j in rng.choice(x.shape[1], min(3, x.shape[1]), replace=False):
                    linear, trees = pvr.r2_pair(z, j)
                    out.append(trees - linear)
    return np.array(out)


def main() -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    real = pd.read_csv(Path(__file__).with_name("prior_vs_real_columns.csv"))
    real = real[real.corpus == "real"].nonlinear_gain.dropna().to_numpy()
    base = pvr.prior_config("cpu_recipe_phase61")
    linear = {**base.activation_weights, "identity": 8.0}
    noisy = {"noise_std": (0.005, 1.0)}
    variants = {
        "stage 61's prior": {},
        "layers 1-2": {"n_layers": (1, 2)},
        "p_tree 0.1": {"p_tree": 0.1},
        "identity weight 8": {"activation_weights": linear},
        "layers 1-2, p_tree 0.1, identity 8": {"n_layers": (1, 2), "p_tree": 0.1, "activation_weights": linear},
        "noise std up to 1.0": noisy,
        "noise up to 1.0, identity 8": {**noisy, "activation_weights": linear},
        "noise up to 1.0, layers 1-2, identity 8": {**noisy, "n_layers": (1, 2), "activation_weights": linear},
    }
    print(f"real: median {np.median(real):+.3f}, quartiles {np.quantile(real, 0.25):+.3f} / {np.quantile(real, 0.75):+.3f}")
    for name, changes in variants.items():
        g = gains(dataclasses.replace(base, **changes))
        print(f"{name}: {len(g)} columns, median {np.median(g):+.3f}, quartiles {np.quantile(g, 0.25):+.3f} / "
              f"{np.quantile(g, 0.75):+.3f}, KS against real {ks_2samp(real, g).statistic:.3f}", flush=True)


if __name__ == "__main__":
    main()
