"""RePaint against the conditional sampler on whole Boston / Auto tables (issue 14, session 32): one-draw NRMSE,
NRMSE of the mean of 10 draws and CRPS, 20% MCAR, seed 0, for RePaint settings STEPS-JUMP_LENGTH-JUMP_N_SAMPLE.

    python benchmarks/results/repaint_full.py ROWS 10-1-1,50-5-5 LABEL=CKPT ...

ROWS: at most this many rows of each table (a seeded subsample below the table's size). LABEL starting with
noisy_gaussian: the exact noisy-table Gaussian denoiser alone (``baselines.noisy_gaussian``), on CKPT's config.
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import load_real_table, make_mask
from benchmarks.draws import score
from icl_diffusion import DiffusionImputer, load_checkpoint
from icl_diffusion.baselines import noisy_gaussian

warnings.simplefilter("ignore")
torch.set_num_threads(1)
rows, settings = int(sys.argv[1]), sys.argv[2].split(",")
for arg in sys.argv[3:]:
    label, path = arg.split("=")
    pre = load_checkpoint(path)
    if label.startswith("noisy_gaussian"):
        pre = noisy_gaussian(pre)
    for name in ("boston", "auto"):
        table = load_real_table(name, max_rows=rows, seed=0)
        missing = make_mask(table.x, "mcar", 0.2, np.random.default_rng(0))
        x = np.where(missing, np.nan, table.x)
        for setting in settings:
            steps, length, n_sample = map(int, setting.split("-"))
            for method in ("repaint", "conditional"):
                start = time.time()
                imp = DiffusionImputer(checkpoint=pre, random_state=0, method=method, n_steps=steps,
                                       jump_length=length, jump_n_sample=n_sample).fit(x)
                s = score(np.stack(imp.sample(x, n_imputations=10)), table.x, missing, table)
                print(f"{label} {name}({len(x)}) {method} {setting}: 1draw {s['NRMSE 1 draw']:.3f} "
                      f"mean {s['NRMSE mean']:.3f} crps {s['CRPS']:.3f} {time.time() - start:.0f}s", flush=True)
