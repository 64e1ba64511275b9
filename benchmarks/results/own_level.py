"""Experiment (session 26): ``inference.LEVEL_AGREEMENT`` patched for one run of ``em_iters.py``'s modes.

    python benchmarks/results/own_level.py DELTA grid 30 1e-4 SEEDS OUT_CSV
    python benchmarks/results/own_level.py DELTA screen 30 1e-4 SECTIONS OUT_DIR

DELTA: the largest gap between the network's and the Gaussian estimate's level at which a column's inputs keep
their own levels; ``none`` (or a negative number) never lets them. Session 26: 0.1 (adopted), 0.2 and none on
the real grid (seeds 0-2 and 3-5), benchmarks/results/imputation.md. Run from the repository root.
"""

import sys

sys.path.insert(0, "benchmarks/results")
sys.path.insert(0, "benchmarks")
import em_iters

from icl_diffusion import inference

inference.LEVEL_AGREEMENT = -1.0 if sys.argv[1] == "none" else float(sys.argv[1])
if sys.argv[1] == "none":  # since session 35 a scattered departure also keeps the inputs' own levels
    inference.LEVEL_CONSISTENCY = 0.0
em_iters.main(sys.argv[2:])
