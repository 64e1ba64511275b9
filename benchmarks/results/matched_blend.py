"""Experiment (session 24, adopted): the point estimate's blend weights (``inference.input_weights``) chosen on held
cells drawn with the columns' missingness odds (``inference.missingness_odds``, clipped to ``MATCH_ODDS_RANGE``);
the sharp nearest-rows estimate, and the nearest-rows estimate over the table filled by the network
(``neighbour_feature.filled_neighbours``), offered to the blend where each lowers the table's pooled held-out loss
by its ``INPUT_MIN_GAIN``. Each VARIANT undoes part of that in the engine as committed and runs
benchmarks/screen.py on the shipped weights (its rows under the label VARIANT; compared with
benchmarks/results/screen/stage25/, the engine's own rows):

    engine       as committed (odds within 1/30..30 of their median, sharp and filled offered, gain bars 5% / 10%)
    nofilled     no filled-table estimate (the engine of commit 4304862)
    filledgate5  the filled-table estimate's gain bar at 5%; filledopen: no bar for it
    uniform      held cells drawn uniformly (as before session 24), sharp offered
    nosharp      the odds, no sharp estimate
    before       uniformly held cells, no sharp estimate: the engine of session 23 up to the hold-out's draw
                 (``rng.choice`` with equal probabilities draws other cells than without them)
    nogate       the sharp estimate offered to every table, no filled-table estimate
    rangeR       odds within 1/R..R of their median (R = 3, 10, 100), as nogate (the range scan of imputation.md)
    gainG        the sharp estimate's gain bar G (e.g. gain0.15), no filled-table estimate

Run from the repository root, e.g.

    python benchmarks/results/matched_blend.py nosharp --sections grid,categorical,categorical_fresh,gaussian
"""
import runpy
import sys
from pathlib import Path

import numpy as np

import icl_diffusion.inference as engine
import icl_diffusion.model as M

variant = sys.argv.pop(1)
if variant in ("uniform", "before"):
    engine.missingness_odds = lambda x, known, is_cat, columns: np.ones(x.shape)
if variant in ("nosharp", "before"):
    offered = M.Denoiser.closed_form_inputs
    M.Denoiser.closed_form_inputs = property(lambda self: tuple(n for n in offered.fget(self) if n != "sharp"))
gain = dict(engine.INPUT_MIN_GAIN)
if variant in ("nofilled", "nogate", "before", "uniform", "nosharp") or variant.startswith(("range", "gain")):
    engine.FILLED_INPUT = False  # the variants of the first commit
if variant == "nogate" or variant.startswith("range"):
    gain["sharp"] = -np.inf
if variant.startswith("range"):
    r = float(variant.removeprefix("range"))
    engine.MATCH_ODDS_RANGE = (1 / r, r)
if variant.startswith("gain"):
    gain["sharp"] = float(variant.removeprefix("gain"))
if variant == "filledgate5":
    gain["filled"] = 0.05
if variant == "filledopen":
    gain["filled"] = -np.inf
engine.INPUT_MIN_GAIN = gain
screen = Path(__file__).resolve().parent.parent / "screen.py"
sys.argv = [str(screen), f"{variant}=checkpoints/icl_diffusion_small.safetensors", *sys.argv[1:]]
runpy.run_path(str(screen), run_name="__main__")
