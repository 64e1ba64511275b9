"""RePaint with a checkpoint: the Gaussian check of tests/test_repaint_quality.py (bias of the draws' mean in exact
sd, spread / exact sd) and one-draw NRMSE of RePaint vs the conditional sampler on Boston / Auto (60 rows, 20% MCAR,
10 and 50 plain steps, 10 draws). Run from the repository root: python benchmarks/results/repaint_eval.py LABEL=CKPT ... (LABEL noisy_gaussian: the
exact Gaussian denoiser alone, on CKPT's config)"""
import sys
import warnings

import numpy as np
import torch

warnings.simplefilter("ignore"); torch.set_num_threads(1)
sys.path.insert(0, "tests"); sys.path.insert(0, ".")
import test_repaint_quality as T

from benchmarks.common import load_real_table, make_mask
from benchmarks.draws import score
from icl_diffusion import DiffusionImputer, load_checkpoint
from icl_diffusion.baselines import noisy_gaussian

for arg in sys.argv[1:]:
    label, path = arg.split("=")
    pre = load_checkpoint(path)
    if label == "noisy_gaussian":
        pre = noisy_gaussian(pre)
    bias, spread = T._draw_errors(pre)
    line = [f"{label}: gaussian bias {bias:.3f} spread {spread:.3f}"]
    for name in ("boston", "auto"):
        table = load_real_table(name, max_rows=60, seed=0)
        missing = make_mask(table.x, "mcar", 0.2, np.random.default_rng(0))
        x = np.where(missing, np.nan, table.x)
        for steps in (10, 50):
            for method in ("repaint", "conditional"):
                imp = DiffusionImputer(checkpoint=pre, random_state=0, method=method, n_steps=steps).fit(x)
                s = score(np.stack(imp.sample(x, n_imputations=10)), table.x, missing, table)
                line.append(f"{name} {method} {steps}: 1draw {s['NRMSE 1 draw']:.3f} mean {s['NRMSE mean']:.3f} crps {s['CRPS']:.3f}")
    print("\n  ".join(line), flush=True)
