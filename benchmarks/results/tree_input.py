"""Experiment (session 27): the blend's extremely-randomized-trees input (``tree_regression.py``), patched into
``inference.ENGINE_INPUTS`` with its gate (``INPUT_MIN_GAIN["trees"]``) for one run; em_iters.py's modes.

    python benchmarks/results/tree_input.py INPUTS GAIN TREES ROWS grid SEEDS OUT_CSV
    python benchmarks/results/tree_input.py INPUTS GAIN TREES ROWS screen SECTIONS OUT_DIR
    python benchmarks/results/tree_input.py INPUTS GAIN TREES ROWS cost       # seconds: session 26's inputs vs these

INPUTS: the engine's inputs, comma-separated (``kernel`` is session 26's engine, ``kernel,trees`` adds the trees);
GAIN: the trees' gate (0: ungated); TREES: trees per forest, comma-separated per sweep (``tree_regression.TREES``;
30 was session 27's one sweep); ROWS: ``tree_regression.MAX_ROWS``, most rows the
trees of a table imputed as a whole learn from (0: the key rows only). ``TREE_CATEGORICAL=0`` in the environment:
categorical columns are not the trees' features (``tree_regression.CATEGORICAL``); ``TREE_LEAF_ROWS=N``: leaves of
at least N rows (``tree_regression.LEAF_ROWS``); ``TREE_BEYOND_RANGE=1``: the Gaussian estimate where it leaves the
fitted values' range (``tree_regression.BEYOND_RANGE``). Run from the repository root;
benchmarks/results/imputation.md, session 27, has the runs.
"""

import os
import sys
from functools import partial

sys.path.insert(0, "benchmarks/results")
sys.path.insert(0, "benchmarks")
import em_iters

from icl_diffusion import gaussian_feature, inference, tree_regression


def cost(inputs: tuple[str, ...]) -> None:
    """Seconds per point estimate with session 26's inputs and with ``inputs``, alternating on each mask."""
    em_iters.alternate({label: partial(setattr, inference, "ENGINE_INPUTS", value)
                        for label, value in (("kernel", ("kernel",)), (",".join(inputs), inputs))})


if __name__ == "__main__":
    inputs, gain, trees, rows, *rest = sys.argv[1:]
    inputs = tuple(inputs.split(","))
    inference.INPUT_MIN_GAIN = {**inference.INPUT_MIN_GAIN, "trees": float(gain)}
    tree_regression.TREES = tuple(int(t) for t in trees.split(","))
    tree_regression.MAX_ROWS = int(rows)
    tree_regression.CATEGORICAL = os.environ.get("TREE_CATEGORICAL", "1") == "1"
    tree_regression.LEAF_ROWS = int(os.environ.get("TREE_LEAF_ROWS", tree_regression.LEAF_ROWS))
    tree_regression.BEYOND_RANGE = os.environ.get("TREE_BEYOND_RANGE", "0") == "1"
    if rest[0] == "cost":
        cost(inputs)
    else:
        inference.ENGINE_INPUTS = inputs
        mode, what, out = rest
        em_iters.main([mode, str(gaussian_feature.EM_MAX_ITERS), str(gaussian_feature.EM_TOL), what, out])
