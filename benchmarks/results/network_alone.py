"""The network alone (``blend_inputs=False``: no blend with the kernel regression and the trees) on the real grid's
masks of seed 0 (six tables, MCAR / MAR / MNAR at 10 / 30 / 50%, as ``benchmarks/imputation.py`` draws them), one
mean NRMSE per checkpoint: how much a training change moved the network itself, apart from what the blend makes of
it. Session 49 (the trees' estimate as a network input, stage 75; benchmarks/results/imputation.md).

    python benchmarks/results/network_alone.py LABEL=CHECKPOINT [LABEL=CHECKPOINT ...]
"""

import sys
import zlib
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import load_real_table, make_mask, nrmse

from icl_diffusion import DiffusionImputer
from icl_diffusion.checkpoint import load_checkpoint

TABLES = ("boston", "auto", "quakes", "guns", "college", "close_college")

torch.set_num_threads(1)
checkpoints = {label: load_checkpoint(path) for label, path in (a.split("=", 1) for a in sys.argv[1:])}
errors = {label: [] for label in checkpoints}
for key in TABLES:
    table = load_real_table(key, max_rows=1000)
    for mechanism in ("mcar", "mar", "mnar"):
        for rate in (0.1, 0.3, 0.5):
            rng = np.random.default_rng([0, zlib.crc32(f"{table.name}/{mechanism}/{rate}".encode())])
            missing = make_mask(table.x, mechanism, rate, rng)
            x = np.where(missing, np.nan, table.x)
            for label, checkpoint in checkpoints.items():
                filled = DiffusionImputer(checkpoint=checkpoint, random_state=0, blend_inputs=False).fit_transform(x)
                errors[label].append(nrmse(filled, table.x, missing))
    print(f"after {key}:", {label: round(float(np.mean(e)), 4) for label, e in errors.items()}, flush=True)
print("all:", {label: round(float(np.mean(e)), 4) for label, e in errors.items()})
