"""Experiment: inference's EM settings (``gaussian_feature.EM_MAX_ITERS``, ``EM_TOL``), patched for one run.

Run from the repository root, one thread:

    python benchmarks/results/em_iters.py screen MAX TOL SECTIONS OUT_DIR   # screen.py's sections -> OUT_DIR/*.csv
    python benchmarks/results/em_iters.py grid MAX TOL SEEDS OUT_CSV        # imputation.py's real grid, icl_point
    python benchmarks/results/em_iters.py cost                              # seconds: 10 iterations vs the constants

``MAX 10 TOL 0`` is the engine before session 26 (10 iterations, as training runs them). Session 26:
``screen 30 1e-4 grid,gaussian,draws,categorical,prediction,categorical_fresh runs/em/it30_tol1e-4``, compared by
``python benchmarks/screen.py it30_tol1e-4=checkpoints/icl_diffusion_small.safetensors --sections ... --out-dir
runs/em``; ``grid 10 0 3,4,5`` and ``grid 30 1e-4 3,4,5`` for the fresh seeds (benchmarks/results/imputation.md).
Session 11 ran an earlier version of this script (fixed ``gaussian_em_iters`` in the model config; git history).
"""

from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, "benchmarks")
import numpy as np
import torch

torch.set_num_threads(1)
import screen
from common import diffusion_imputer, gaussian_table, load_real_table, make_mask

from icl_diffusion import gaussian_feature
from icl_diffusion.checkpoint import load_checkpoint

CHECKPOINT = "checkpoints/icl_diffusion_small.safetensors"


def patch(max_iters, tol) -> None:
    gaussian_feature.EM_MAX_ITERS, gaussian_feature.EM_TOL = int(max_iters), float(tol)


def cost() -> None:
    """Seconds per point estimate, 10 iterations (tol 0) and the module's constants alternating on each mask."""
    settings = [(10, 0.0), (gaussian_feature.EM_MAX_ITERS, gaussian_feature.EM_TOL)]
    alternate({s: partial(patch, *s) for s in settings})


def alternate(variants: dict) -> None:
    """Seconds per point estimate of each of ``variants`` (label -> a function that patches the engine), alternating
    on each mask of 7 tables x 9 masks; printed per table and on average."""
    imputer = diffusion_imputer(load_checkpoint(CHECKPOINT), max_context_rows=512)
    warm = np.random.default_rng(0).normal(size=(40, 4))
    imputer(np.where(np.random.default_rng(1).random(warm.shape) < 0.2, np.nan, warm), 0)
    seconds = {label: [] for label in variants}
    for name in ("gaussian", "boston", "college", "guns", "quakes", "close_college", "auto"):
        table = gaussian_table(500, 10, seed=0) if name == "gaussian" else load_real_table(name)
        for mech in ("mcar", "mar", "mnar"):
            for rate in (0.1, 0.3, 0.5):
                x = np.where(make_mask(table.x, mech, rate, np.random.default_rng(0)), np.nan, table.x)
                for label, patch_engine in variants.items():
                    patch_engine()
                    start = time.perf_counter()
                    imputer(x, 0)
                    seconds[label].append(time.perf_counter() - start)
        print(name, {k: round(float(np.mean(v[-9:])), 3) for k, v in seconds.items()}, flush=True)
    print("mean", {k: round(float(np.mean(v)), 3) for k, v in seconds.items()})


def main(argv: list[str]) -> None:
    if argv[0] == "cost":
        return cost()
    mode, max_iters, tol, what, out = argv
    patch(max_iters, tol)
    pretrained = load_checkpoint(CHECKPOINT)
    if mode == "grid":
        screen.grid_rows(pretrained, ",".join(screen.REAL_TABLES), what).to_csv(out, index=False)
        return
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for section in what.split(","):
        if not (folder / f"{section}.csv").exists():
            screen.section_rows(section, pretrained).to_csv(folder / f"{section}.csv", index=False)
            print("done", section, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
