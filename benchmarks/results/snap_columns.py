"""Experiment (session 21): per-column CRPS of 20 draws of a real table (draws.py's masks, 30% missing, seeds 0-2)
with a discrete column's draws moved to the nearest observed value (session 18's rule) or onto its frequencies
tilted to the cell's mean (``inference.snap_to_support``, session 21). Both are applied to the same unsnapped
draws (snapping is the draws' last step). Run from the repository root:
python benchmarks/results/snap_columns.py auto mcar"""
import sys

sys.path.insert(0, ".")
import numpy as np
import torch

torch.set_num_threads(1)
from benchmarks.common import load_real_table, make_mask
from benchmarks.draws import crps
from icl_diffusion import DiffusionImputer, load_checkpoint
from icl_diffusion.inference import SNAP_MAX_VALUES, SNAP_MIN_REPEATS, snap_to_support


def nearest(draws, x, known):
    out = draws.copy()
    for j in range(x.shape[1]):
        support = np.unique(x[known[:, j], j])
        if (~known[:, j]).any() and 0 < len(support) <= min(SNAP_MAX_VALUES, known[:, j].sum() / SNAP_MIN_REPEATS):
            snapped = support[np.abs(draws[:, :, j, None] - support).argmin(-1)]
            out[:, :, j] = np.where(known[:, j], draws[:, :, j], snapped)
    return out


pre = load_checkpoint("checkpoints/icl_diffusion_small.safetensors")
table, mech = load_real_table(sys.argv[1]), sys.argv[2]
F = table.x.shape[1]
scores = {"nearest": [], "tilted": []}
for seed in (0, 1, 2):
    missing = make_mask(table.x, mech, 0.3, np.random.default_rng(seed))
    x_in = np.where(missing, np.nan, table.x)
    imp = DiffusionImputer(checkpoint=pre, device="cpu", random_state=seed, snap_draws=False).fit(x_in)
    raw = np.stack(imp.sample(x_in, n_imputations=20))
    known = ~missing
    tilted = snap_to_support(torch.as_tensor(raw), np.nan_to_num(x_in), known, np.zeros(F, bool)).numpy()
    for name, d in (("nearest", nearest(raw, table.x, known)), ("tilted", tilted)):
        scores[name].append([crps(d[:, missing[:, j], j], table.x[missing[:, j], j]) if missing[:, j].any()
                             else np.nan for j in range(F)])
print("column  distinct values  CRPS nearest  CRPS tilted")
for j in range(F):
    print(j, len(np.unique(table.x[:, j])), *(round(float(np.nanmean(np.array(scores[k])[:, j])), 4)
                                              for k in ("nearest", "tilted")))
