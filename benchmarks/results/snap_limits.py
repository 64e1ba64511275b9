"""Experiment (session 21): which numeric columns count as discrete for snap_draws (inference.SNAP_MAX_VALUES,
SNAP_MIN_REPEATS)? CRPS of 20 draws over all missing cells, draws.py's masks (30%, seeds 0-2), the same unsnapped
draws snapped under each (max values, min repeats) setting; "raw": not snapped. Run from the repository root:
python benchmarks/results/snap_limits.py boston,auto,quakes,guns,college,close_college"""
import sys

sys.path.insert(0, ".")
import numpy as np
import torch

torch.set_num_threads(1)
import icl_diffusion.inference as inf
from benchmarks.common import load_real_table, make_mask
from benchmarks.draws import crps
from icl_diffusion import DiffusionImputer, load_checkpoint

pre = load_checkpoint("checkpoints/icl_diffusion_small.safetensors")
CFGS = [(20, 2), (50, 2), (100, 5), (100, 3), (200, 5)]
for name in sys.argv[1].split(","):
    table = load_real_table(name)
    F = table.x.shape[1]
    for mech in ("mcar", "mar"):
        res = {}
        for seed in (0, 1, 2):
            missing = make_mask(table.x, mech, 0.3, np.random.default_rng(seed))
            x_in = np.where(missing, np.nan, table.x)
            raw = np.stack(DiffusionImputer(checkpoint=pre, device="cpu", random_state=seed, snap_draws=False).fit(x_in).sample(x_in, n_imputations=20))
            for cfg in CFGS:
                inf.SNAP_MAX_VALUES, inf.SNAP_MIN_REPEATS = cfg
                d = inf.snap_to_support(torch.as_tensor(raw), np.nan_to_num(x_in), ~missing, np.zeros(F, bool)).numpy()
                res.setdefault(cfg, []).append(crps(d[:, missing], table.x[missing]))
            res.setdefault("raw", []).append(crps(raw[:, missing], table.x[missing]))
        print(name, table.x.shape, mech, "raw", round(float(np.mean(res["raw"])), 4), *(f"{c}:{np.mean(res[c]):.4f}" for c in CFGS), flush=True)
