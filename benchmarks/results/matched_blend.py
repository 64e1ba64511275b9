"""Experiment (session 24, adopted): the point estimate's blend weights (``inference.input_weights``) chosen on held
cells drawn with the columns' missingness odds (``inference.missingness_odds``, clipped to ``MATCH_ODDS_RANGE``)
and the sharp nearest-rows estimate offered to the blend where it lowers the table's pooled held-out loss by
``SHARP_MIN_GAIN``. Each VARIANT undoes part of that in the engine as committed and runs benchmarks/screen.py on
the shipped weights (its rows under the label VARIANT; compared with benchmarks/results/screen/stage25/, which are
the engine's own rows since session 24):

    engine       as committed (odds within 1/30..30 of their median, sharp offered, gain bar 0.05)
    uniform      held cells drawn uniformly (as before session 24), sharp offered
    nosharp      the odds, no sharp estimate
    before       uniformly held cells, no sharp estimate: the engine of session 23 up to the hold-out's draw
                 (``rng.choice`` with equal probabilities draws other cells than without them)
    nogate       the sharp estimate offered to every table
    rangeR       odds within 1/R..R of their median (R = 3, 10, 100), no gate (the range scan of imputation.md)
    gainG        the gain bar G (e.g. gain0.15)

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
if variant == "nogate" or variant.startswith("range"):
    engine.SHARP_MIN_GAIN = -np.inf
if variant.startswith("range"):
    r = float(variant.removeprefix("range"))
    engine.MATCH_ODDS_RANGE = (1 / r, r)
if variant.startswith("gain"):
    engine.SHARP_MIN_GAIN = float(variant.removeprefix("gain"))
screen = Path(__file__).resolve().parent.parent / "screen.py"
sys.argv = [str(screen), f"{variant}=checkpoints/icl_diffusion_small.safetensors", *sys.argv[1:]]
runpy.run_path(str(screen), run_name="__main__")
