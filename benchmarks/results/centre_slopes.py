"""Experiment (session 23): is the point estimate, which multiple imputations are centred on, tilted like a ridge
fit? On benchmarks/rubin_coverage.py's tables (300 x 3: y = x1 + 0.5 x2 + noise, corr(x1, x2) = 0.5, 25% of y
and of x1 hidden, MCAR), regress the point estimate of y, over the rows where y was hidden and x1 known, on the
true x1 and x2, and compare with the same regression of the true y (the data's slopes), averaged over 10 tables.
Run from the repository root:

    python benchmarks/results/centre_slopes.py                          # the shipped network, the engine's defaults
    python benchmarks/results/centre_slopes.py --no-blend               # without the blend with the inputs
    python benchmarks/results/centre_slopes.py --closed-form            # the closed-form Gaussian input alone
    python benchmarks/results/centre_slopes.py --closed-form --shrink-floor 0.05   # with session 22's 5% floor
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import rubin_coverage

import icl_diffusion.gaussian_feature as G
from icl_diffusion import DiffusionImputer
from icl_diffusion.baselines import closed_form
from icl_diffusion.checkpoint import load_pretrained

p = argparse.ArgumentParser()
p.add_argument("--closed-form", action="store_true")
p.add_argument("--no-blend", action="store_true")
p.add_argument("--shrink-floor", type=float, default=0.0, help="the least shrinkage of the input's covariance")
p.add_argument("--tables", type=int, default=10)
args = p.parse_args()
torch.set_num_threads(1)
if args.shrink_floor > 0:
    def _shrink(cov, n_rows, floor=args.shrink_floor):
        var = cov.diagonal(dim1=1, dim2=2)
        var = torch.where(var > 1e-6, var, torch.ones_like(var))
        lam = (cov.shape[-1] / (cov.shape[-1] + n_rows)).clamp(floor, 0.5)[:, None, None]
        return (1 - lam) * (cov - torch.diag_embed(cov.diagonal(dim1=1, dim2=2))) + torch.diag_embed(var)
    G._shrink = _shrink
pretrained = load_pretrained()
pretrained = closed_form(pretrained) if args.closed_form else pretrained
slopes = []
for seed in range(args.tables):
    full, masked = rubin_coverage.simulate(300, "mcar", 0.25, np.random.default_rng(seed))
    kwargs = {"blend_inputs": False} if args.no_blend else {}
    point = DiffusionImputer(checkpoint=pretrained, random_state=seed, **kwargs).fit_transform(masked)
    rows = np.isnan(masked[:, 0]) & ~np.isnan(masked[:, 1])
    design = np.column_stack([np.ones(rows.sum()), full[rows, 1], full[rows, 2]])
    data = np.linalg.lstsq(np.column_stack([np.ones(300), full[:, 1:]]), full[:, 0], rcond=None)[0][1:]
    slopes.append([*data, *np.linalg.lstsq(design, point[rows, 0], rcond=None)[0][1:]])
s = np.mean(slopes, 0)
print(f"slopes of y on x1, x2: the data {s[0]:.3f}, {s[1]:.3f}; the point estimate {s[2]:.3f}, {s[3]:.3f}")
