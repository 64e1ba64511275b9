"""Experiment (session 26): the blend's kernel ridge regression input (``inference.ENGINE_INPUTS``) on or off.

    python benchmarks/results/kernel_input.py on|off grid 30 1e-4 SEEDS OUT_CSV       # em_iters.py's modes
    python benchmarks/results/kernel_input.py on|off screen 30 1e-4 SECTIONS OUT_DIR
    python benchmarks/results/kernel_input.py cost                                    # seconds, off vs on

Run from the repository root; benchmarks/results/imputation.md, session 26, has the runs.
"""

import sys
import time

sys.path.insert(0, "benchmarks/results")
sys.path.insert(0, "benchmarks")
import em_iters
import numpy as np
from common import diffusion_imputer, gaussian_table, load_real_table, make_mask

from icl_diffusion import inference
from icl_diffusion.checkpoint import load_checkpoint


def cost() -> None:
    """Seconds per point estimate without and with the kernel input, alternating on each mask (7 tables x 9)."""
    imputer = diffusion_imputer(load_checkpoint(em_iters.CHECKPOINT), max_context_rows=512)
    warm = np.random.default_rng(0).normal(size=(40, 4))
    imputer(np.where(np.random.default_rng(1).random(warm.shape) < 0.2, np.nan, warm), 0)
    seconds = {(): [], ("kernel",): []}
    for name in ("gaussian", "boston", "college", "guns", "quakes", "close_college", "auto"):
        table = gaussian_table(500, 10, seed=0) if name == "gaussian" else load_real_table(name)
        for mech in ("mcar", "mar", "mnar"):
            for rate in (0.1, 0.3, 0.5):
                x = np.where(make_mask(table.x, mech, rate, np.random.default_rng(0)), np.nan, table.x)
                for inputs, times in seconds.items():
                    inference.ENGINE_INPUTS = inputs
                    start = time.perf_counter()
                    imputer(x, 0)
                    times.append(time.perf_counter() - start)
        print(name, {"on" if k else "off": round(float(np.mean(v[-9:])), 3) for k, v in seconds.items()}, flush=True)
    print("mean", {"on" if k else "off": round(float(np.mean(v)), 3) for k, v in seconds.items()})


if __name__ == "__main__":
    if sys.argv[1] == "cost":
        cost()
    else:
        inference.ENGINE_INPUTS = ("kernel",) if sys.argv[1] == "on" else ()
        em_iters.main(sys.argv[2:])
