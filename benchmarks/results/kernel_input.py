"""Experiment (session 26): the blend's kernel ridge regression input (``inference.ENGINE_INPUTS``) on or off.

    python benchmarks/results/kernel_input.py on|off grid 30 1e-4 SEEDS OUT_CSV       # em_iters.py's modes
    python benchmarks/results/kernel_input.py on|off screen 30 1e-4 SECTIONS OUT_DIR
    python benchmarks/results/kernel_input.py cost                                    # seconds, off vs on

Run from the repository root; benchmarks/results/imputation.md, session 26, has the runs.
"""

import sys
from functools import partial

sys.path.insert(0, "benchmarks/results")
sys.path.insert(0, "benchmarks")
import em_iters

from icl_diffusion import inference


def cost() -> None:
    """Seconds per point estimate without and with the kernel input, alternating on each mask (7 tables x 9)."""
    em_iters.alternate({label: partial(setattr, inference, "ENGINE_INPUTS", value)
                        for label, value in (("off", ()), ("on", ("kernel",)))})


if __name__ == "__main__":
    if sys.argv[1] == "cost":
        cost()
    else:
        inference.ENGINE_INPUTS = ("kernel",) if sys.argv[1] == "on" else ()
        em_iters.main(sys.argv[2:])
