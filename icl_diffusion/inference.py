"""From a standardized table tensor to imputations: key-row selection, context caching and query chunking.

Strategy for any table size (documented in the README):
- Key rows: the rows every cell may attend to across rows. If the table has more than ``max_context_rows``
  rows (up to twice as many for a narrow table: ``SamplerConfig.context_cells``), a seeded random subset of that
  many rows is the key set (TabPFN-style context subsampling; rows
  with every cell known are preferred, since they carry the most information and can be cached).
- Every other row is a query row: it attends to the key rows only, so query rows are processed in chunks
  of ``chunk_rows`` against the key rows' cached keys, and one call costs O(rows x keys), linear in rows.
- When the key rows are fully known and the sampler keeps known cells clean (conditional, ddim), their
  encoding does not change between steps (time conditioning reaches unknown cells only) and is computed
  once per ``sample`` call.
"""

from __future__ import annotations

import inspect
import itertools
import math
from dataclasses import replace
from functools import partial
from typing import NamedTuple

import numpy as np
import torch

from . import tree_regression
from .checkpoint import Pretrained
from .diffusion import MASK, GaussianDiffusion
from .gaussian_feature import cell_estimates, converged_em, expand_table, one_hot_layout, table_gaussian
from .kernel_regression import kernel_estimates
from .local_context import choose_weights, local_tables, soft_choice, standardize
from .model import Denoiser
from .sampling import METHODS, SamplerConfig, context_rows, count_calls, repaint_schedule, sample
from .scaling import CLIP
from .transforms import YeoJohnson, check_members
from .tree_regression import extrapolated, fit_rows, target_estimates, tree_estimates, tree_probabilities

# What ``impute`` runs: "point", the one-call posterior mean, or one of the samplers.
ENGINE_METHODS = ("point", *METHODS)
# Spread calibration (``SamplerConfig.calibrate_spread``, ``spread_scales``): share of a column's observed cells
# hidden to measure the draws' errors (at least CALIBRATION_MIN_CELLS, always leaving two observed), draws of
# that run, the pseudo-cells pulling a column's factor toward the table's pooled one, and the factors' range.
CALIBRATION_FRAC = 0.1
CALIBRATION_MIN_CELLS = 10
CALIBRATION_DRAWS = 5
CALIBRATION_PRIOR_CELLS = 20
CALIBRATION_RANGE = (0.5, 4.0)
CALIBRATION_MATCHED = True  # the held cells drawn with the missingness odds (``calibration_cells``)
# Missingness-matched held cells of the blend's weights (``missingness_odds``): ridge penalty and Newton steps of
# the logistic fit, the most rows it is fitted on (a seeded subsample beyond: 10,000 x 100 took 6.4 s on all rows,
# about 1 s on 2,000), and the range of the odds relative to their median (the most a cell's chance of being held
# can move). Session 24: 1/3..3 / 1/10..10 / 1/30..30 / 1/100..100 gained 0.0041 / 0.0064 / 0.0079 / 0.0075 of
# real-grid NRMSE with the sharp estimate offered (benchmarks/results/imputation.md).
MATCH_RIDGE = 1.0
MATCH_NEWTON_STEPS = 8
MATCH_FIT_ROWS = 2000
MATCH_ODDS_RANGE = (1 / 30, 30.0)
# Inputs that join the blend only where they lower the table's pooled held-out loss by this share (``input_weights``),
# so that elsewhere their noise does not win columns by chance. The sharp nearest-rows estimate (tables of
# near-duplicate rows), session 24, 0.05 / 0.15 / none: real grid +0.0075 / +0.0067 / +0.0073, mixed tables' numeric
# cells +0.0014 / +0.0017 / -0.0009; the kernel regression (smooth nonlinear relations), session 26; the trees,
# session 27, 0.02 / 0.03 / 0.05: real grid +0.0076 / +0.0072 / +0.0061, Gaussian tables -0.0007 / -0.0001 / -0.0000
# (benchmarks/results/imputation.md).
# The extrapolated trees, session 40: where the linear excess lowers the pooled loss at all (0.1%: on a tie the plain
# trees); the trees' own gate counts the blends that take either.
INPUT_MIN_GAIN = {"sharp": 0.05, "kernel": 0.02, "trees": 0.03, "extrapolated": 0.001}
# ... and only where that gain exceeds this many paired standard errors over the held cells (0: no such test): a
# table with few held cells (MAR 50% of 500 rows) can show a 3% gain by chance. Session 30, 1 / 2: Gaussian tables
# +0.0006 / +0.0008, real grid -0.0003 / -0.0035 (heavy-tailed errors widen the standard error: real gains refused;
# benchmarks/results/imputation.md). Off.
INPUT_GAIN_SE = 0.0
# ``input_weights``: pseudo-cells of the table's mean loss per held cell added to each column's own (``least_loss``),
# so that a column takes the blend the whole table's held cells choose unless its own clearly ask for another: a
# column's tens of held cells choose among dozens of blends by chance. Session 41, real grid (shipped weights, gain
# over 20, the draws' ``CALIBRATION_PRIOR_CELLS`` that it shared until then): 10 -0.0007, 40 +0.0012, 80 +0.0021,
# 160 +0.0030 (se 0.0010; 102 rows better, 56 worse), 320 +0.0025, the table's choice for every column +0.0021
# (benchmarks/results/imputation.md).
INPUT_PRIOR_CELLS = 160
# ``input_weights``: share of each numeric column's observed cells hidden to choose its blend. Session 42, real grid
# against 0.1: 0.05 -0.0058 (se 0.0042), 0.2 -0.0017 (0.0013).
INPUT_HOLD_FRAC = CALIBRATION_FRAC
# ``input_weights``: pseudo-cells of the table's mean log loss in each categorical column's choice of the trees' weight
# (as ``INPUT_PRIOR_CELLS``). Session 42, mixed tables' accuracy against 20: 80 -0.0008 (se 0.0005), 5 +0.0004 /
# -0.0003 on seeds 0-2 / 3-5 (benchmarks/results/categorical.md).
LEVEL_PRIOR_CELLS = CALIBRATION_PRIOR_CELLS
# ``input_weights``: a numeric column's blend averaged over the grid's candidates within about this many held cells'
# worth of loss of its best (``local_context.soft_choice``); 0: the best alone. Its held cells cannot tell near ties
# apart, and their mixture is as good as either. Session 42, shipped weights, gain over 0 (se): real grid 2 +0.0005
# (0.0003; 108 rows better, 54 worse), 6 +0.0006 (0.0005), 20 -0.0013 (0.0009); at 2 Gaussian tables +0.0004
# (0.0003), mixed tables' numeric cells +0.0018 (0.0005), draws' CRPS +0.0003 (benchmarks/results/imputation.md).
INPUT_SOFT_CELLS = 2.0
# ``input_weights``: a column's inputs keep their own levels where the network's mean over its unknown cells is
# within this of the Gaussian estimate's (standardized units), chosen on the held cells; elsewhere the network read
# a shift off the missingness (MNAR) that held observed cells cannot show, and keeps its level. Session 26, 0.1 /
# 0.2: real grid +0.0056 / +0.0072, MNAR 50% -0.0011 / -0.0073 (benchmarks/results/imputation.md).
LEVEL_AGREEMENT = 0.1
# ... and the network read a shift only where it is consistent: its departure from the Gaussian estimate, averaged
# over the column's unknown cells, at least this many standard deviations of those cells' departures. A reading of
# the missingness moves every unknown cell alike; a network that extrapolates worse than the inputs (a MAR column
# missing where the others are extreme) departs from the Gaussian estimate cell by cell, by more than its mean.
# Session 35: quakes MAR 10% seed 1, latitude's gap 0.083 / 0.113 (shipped / stage 51 weights) against departures of
# sd 0.41 / 0.34 (there the threshold alone moved stage 51's inputs to its level: 0.488 -> 0.970), self-masked MNAR
# Gaussian columns' 0.12-0.19 against sd 0.07-0.10; shipped weights, real grid +0.0002 (se 0.0002), Gaussian level.
LEVEL_CONSISTENCY = 0.5
# ... and where the network keeps its level, each input still brings its own departure from the Gaussian estimate's
# level over the column's unknown cells (``blend_with_inputs``): the network reads the shift off the missingness
# against that linear estimate, and the trees' or the nearest rows' reading of a nonlinear relation adds to it (quakes
# MNAR 10%: latitude and depth missing at their extremes, which the trees read from the other columns as
# MissForest-like does and the linear estimate does not). The departure is weighted 1 - (the column's missing share) /
# DEPARTURE_SHARE, none at or beyond it: an input fitted to half a column self-masked at its top learnt from a truncated
# range, and its departure there is no reading of the relation. 0: off (the inputs at the network's level). Session
# 46, shipped weights, real grid: every departure kept (no weighting) +0.0070 (se 0.0034) / +0.0084 (0.0033) on the
# masks of seeds 0-2 / 3-5 (MNAR 10% +0.07 a mask, MNAR 50% -0.02, Boston MAR 10% -0.025); weighted at 0.5 +0.0079
# (0.0026) / +0.0067 (0.0022) / +0.0072 (0.0023) on seeds 0-2 / 3-5 / 6-8 (MNAR 10% +0.05 a mask, 50% 0), Gaussian
# tables -0.0001 (0.0001), mixed tables' numeric cells +0.0001 (0.0003), draws' CRPS -0.0005 (0.0004), targets
# bit-identical (benchmarks/results/imputation.md).
DEPARTURE_SHARE = 0.5
# ... and the inputs keep their own levels as well in a column whose missingness the other numeric columns predict
# beyond what their linear prediction of the column itself does (``missing_by_others``): missing because of the
# others' values (MAR), which the inputs read from the row, not because of its own (a self-masked column's
# missingness depends on the others only through its own value). The test's F statistic (a linear probability model
# of the missingness on the other columns against on their prediction of the column alone) must reach a p-value below
# 10^-MAR_TEST_LOG10P; 0: off. Session 43, shipped weights, real grid (0.7474 before): 10 / 15 +0.0043 / +0.0051
# (MAR +0.0106, MNAR +0.0048 at 15); at 5 with the extra directions also explaining half of what the others explain,
# +0.0027, at 15 with that +0.0032 (benchmarks/results/imputation.md).
MAR_TEST_LOG10P = 15.0
# ... the other columns including the categorical ones' levels (indicators of at most MAR_TEST_MAX_LEVELS each).
# Session 43: mixed tables' numeric cells +0.0015 (se 0.0008) / +0.0008 (0.0003) on seeds 0-2 / 3-5, accuracy equal.
MAR_TEST_CATEGORICAL = True
MAR_TEST_MAX_LEVELS = 20
# The blend's inputs the engine computes itself, after the network's (``input_point``): "kernel", a kernel ridge
# regression of each column on the row's other cells (``kernel_regression.py``, session 26); "trees", extremely
# randomized trees per column (``tree_regression.py``, session 27); "extrapolated", the same trees' estimate moved
# by the Gaussian's linear excess where a row lies beyond the rows they learnt from (``tree_regression.extrapolated``,
# session 40).
ENGINE_INPUTS = ("kernel", "trees", "extrapolated")
TREE_INPUTS = ("trees", "extrapolated")  # the inputs that need the trees fitted (last in ENGINE_INPUTS, this order)
# The trees' chains start from the table filled by the network's estimate (the blend's first term), not by the Gaussian
# conditional mean: the first sweep's forests read the other columns as the network filled them. Session 45, shipped
# weights, the point estimate: real grid +0.0014 (se 0.0010), +0.0009 (0.0010) and +0.0032 (0.0011) on the masks of
# seeds 0-2, 3-5 and 6-8 (MNAR +0.0051 / +0.0028 / +0.0080, AER/Guns +0.0075 / +0.0037 / +0.0137, quakes -0.0049 /
# -0.0025 / -0.0037), mixed tables' numeric cells +0.0009 (0.0008), Gaussian tables -0.0002 (0.0004), the same time
# (benchmarks/results/imputation.md).
TREES_START_NETWORK = True
# ``input_weights`` of a table imputed as a whole: False, chosen on the rows its final call's trees learn from (every
# row up to ``tree_regression.MAX_ROWS``, the key rows the network's context), so each input is judged as it is
# used; True (sessions 17-28): on the key rows alone, where the trees learn from those only and lose to the others
# on tables of more rows than the context (session 29: real grid 0.7584 -> 0.7533 with the trees' sweeps).
WEIGHTS_ON_KEYS = False
# The trees' chains (``tree_regression.chain_fills``) of the final call, where the blend gives them weight; the
# held-out call that chose that weight fits ``tree_regression.CHAINS``. The weight needs the trees roughly; the
# estimate gains from every chain (a mean over more fills). Session 47, real grid seeds 0-2 against 10 chains in both
# calls (0.7248): final 20 +0.0022 (se 0.0003), final 40 +0.0034 (0.0004) at 1.5x the time; held-out 5 and final 20
# +0.0022 (0.0007) at about the same time a table, 30 +0.0030 (0.0007) at 1.2x; 1,000 x 20 Gaussian (no trees in its
# final call) 4.9 -> 3.9 s (benchmarks/results/imputation.md).
FINAL_CHAINS = 20
# ... each of these sweeps (trees per forest, one entry per sweep): one sweep more than the held-out call's
# ``tree_regression.TREES``. Session 48, real grid against (1, 1, 3) in both calls: +0.0011 (se 0.0003) / +0.0006
# (0.0004) on the masks of seeds 0-2 / 3-5; four sweeps in both calls +0.0009 (0.0008) / +0.0013 (0.0006), and a
# third more trees in the held-out call, which a table whose trees get no weight pays
# (benchmarks/results/imputation.md).
FINAL_TREES = (1, 1, 1, 3)
# The held-out call fits ``tree_regression.CHAINS`` first, then, where the trees help at all (the best blend
# that takes them has a lower pooled loss over the held cells than the best that does not), chains up to this many
# (the later ones only: chains are seeded by index), so that the held cells judge the trees by a mean nearer the one
# the final call blends; where the trees do not help (most Gaussian tables) five chains say so. Session 52, real grid
# against 5 (se): 10 where the trees help +0.0017 (0.0005) on the masks of seeds 0-2, mixed tables' numeric cells
# +0.0006, draws' CRPS +0.0004, Gaussian tables -0.0006 (0.0004, MNAR) at 1.15x the time a table (College 1.41x); 10
# in every table +0.0017 / +0.0016 on seeds 0-2 / 3-5; 20 where they help +0.0029 / +0.0021 at 1.31x (College 1.66x);
# 10 only where the five pass the trees' 3% gate +0.0007, Gaussian level (benchmarks/results/imputation.md).
HELD_CHAINS = 10
# Categorical cells: the network's class probabilities blended per column with extremely randomized trees'
# (``tree_regression.tree_probabilities``), (1 - w) network + w trees, w of ``LEVEL_WEIGHT_GRID`` chosen by the log
# loss of held observed cells of the column (``input_weights``), as the numeric inputs are. False: the network's.
# Session 30, mixed tables' accuracy, seeds 0-2 / 3-5: grid up to 0.75 +0.0024 / +0.0006, up to 0.5 +0.0032 /
# +0.0011, and with ``LEVEL_GAIN_SE`` 1 +0.0025 / +0.0021 (adopted); a quarter of the cells held +0.0035 / -0.0002
# (benchmarks/results/categorical.md).
CATEGORICAL_TREES = True
LEVEL_WEIGHT_GRID = (0.0, 0.25, 0.5)
# ... offered only where they lower the table's pooled log loss over its held categorical cells by this share (as
# ``INPUT_MIN_GAIN``; session 30: 0.02 +0.0018 against 0's +0.0024, seeds 0-2, grid up to 0.75) and by more than
# ``LEVEL_GAIN_SE`` paired standard errors of the held cells' log losses (a chance win on a table of few held cells,
# tests/test_mixed_draws.py's category: accuracy 0.79 -> 0.69 without it).
LEVEL_MIN_GAIN = 0.0
LEVEL_GAIN_SE = 1.0
TEMPERATURE_GRID = np.exp(np.linspace(np.log(0.2), np.log(5.0), 61))  # draw_temperature's choices
TEMPERATURE_FRAC = 0.25  # draw_temperature: share of a categorical column's observed key-row cells hidden
BOOTSTRAP_EM_ITERS = 3  # parameter_shifts: EM iterations of a resample's fit, from the key rows' fit
TEMPERATURE_MATCHED = True  # draw_temperature's held cells drawn with the missingness odds
# The views of the local contexts' calls (``local_point``): the plain table only, half the cost of the ensemble's
# two views for the same blend (benchmarks/results/local_context.md).
LOCAL_MEMBERS = ("identity",)
# ``view_weights``: the second view's weights a column may take, and the fewest observed key cells a column needs
# to be cross-validated (below: the equal average). A finer grid (0, 1/4, ..., 1) chosen on one 10% hold-out
# instead of cross-validation lost R² (benchmarks/results/ensemble.md, session 16).
VIEW_WEIGHT_GRID = (0.0, 0.5, 1.0)
VIEW_MIN_CELLS = 10
# ``input_weights``: the blends a column may take of (the network's estimate, the closed-form Gaussian estimate, the
# nearest-rows estimate): every weight triple on a simplex grid of this step.
INPUT_WEIGHT_STEP = 0.25
# ``snap_draws``: a numeric column counts as discrete when its observed values take at most this many distinct
# values, each seen at least SNAP_MIN_REPEATS times on average (so a short table's continuous column does not).
# Session 21 (20 values, 2 repeats before): Boston's zoned columns (tax, ptratio, indus, zn) join, its draws'
# CRPS 0.283 / 0.299 -> 0.275 / 0.293; Auto, Guns, College, close_college level, quakes' 22-valued magnitude
# 0.0004 / 0.0020 worse (benchmarks/results/draws.md).
SNAP_MAX_VALUES = 100
SNAP_MIN_REPEATS = 5
# ``impute``'s keyword arguments that default to the checkpoint's tuned value (``SamplerConfig``): all its fields
# but the draws' sampler, which the estimators choose.
SETTINGS = tuple(name for name in SamplerConfig.__dataclass_fields__ if name not in ("draw_method", "draw_steps"))


def choose_key_rows(known: torch.Tensor, max_context_rows: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of the key rows (sorted) of one table; known: (N, F). Complete rows first, then others."""
    N = known.shape[0]
    if N <= max_context_rows:
        return torch.arange(N)
    order = torch.randperm(N, generator=generator)
    complete = known.all(1)[order]
    order = torch.cat([order[complete], order[~complete]])  # stable: random within each group
    return order[:max_context_rows].sort().values


class TableDenoiser:
    """The sampler's denoiser callable for one table (repeated over the sample batch).

    Args:
        model, is_cat (F,), n_classes (F,): the network and the table's column types.
        key_rows: (K,) indices of key rows. chunk_rows: query rows per forward pass.
        cache_context: reuse the key rows' encoding across calls (valid when they are fully known and the
            sampler passes them clean).
        return_inputs: each call also returns the closed-form input estimates (S, N, F, k) the network was
            handed (``Denoiser.forward``'s ``return_inputs``).

    The Gaussian input feature's fit depends only on the key rows' known cells, which no sampler changes
    between calls: it is computed at the first call and reused by every later one (one object per table).
    """

    def __init__(self, model: Denoiser, is_cat, n_classes, key_rows, chunk_rows: int, cache_context: bool,
                 return_inputs: bool = False):
        self.model = model
        self.return_inputs = return_inputs
        self.is_cat, self.n_classes = is_cat, n_classes
        self.key_rows = key_rows
        self.chunk_rows = chunk_rows
        self.cache_context = cache_context
        self._cache = None
        self._fit = None
        self.calls = 0

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, known: torch.Tensor):
        self.calls += 1
        S = x_t.shape[0]
        # The network reads numeric cells within +-CLIP, as in training; the table keeps its values beyond.
        x_t = torch.where(self.is_cat.reshape(1, 1, -1), x_t, x_t.clamp(-CLIP, CLIP))
        kr = self.key_rows.to(x_t.device)
        if self.model.cfg.gaussian_feature and self._fit is None:
            self._fit = self.model.fit_gaussian(x_t[:1, kr], known[:1, kr], self.is_cat, self.n_classes)
        # Samples in groups whose key rows fill one pass of at most chunk_rows rows (or one sample's): a
        # pass of S x 1,024 rows spills out of the caches (1.3 ms a row on this CPU at S = 20, 0.8 at S = 1).
        group = max(1, self.chunk_rows // len(kr))
        if group >= S:
            return self._call(x_t, t, known)
        parts = [self._call(x_t[s : s + group], t[s : s + group], known[s : s + group]) for s in range(0, S, group)]
        return tuple(torch.cat(p) for p in zip(*parts))

    def _call(self, x_t: torch.Tensor, t: torch.Tensor, known: torch.Tensor):
        S, N, Fe = x_t.shape
        is_cat = self.is_cat.expand(S, Fe)
        n_classes = self.n_classes.expand(S, Fe)
        kr = self.key_rows.to(x_t.device)
        fit, inputs = self._fit, self.return_inputs
        if len(kr) == N:  # small table: one pass, every row a key row
            return self.model(x_t, t, known, is_cat, n_classes, gaussian_fit=fit, return_inputs=inputs)
        # Outputs: numeric (S, N, F), logits (S, N, F, C) and with return_inputs the inputs (S, N, F, k).
        out = [x_t.new_empty(S, N, Fe), x_t.new_empty(S, N, Fe, max(2, int(self.n_classes.max())))]
        if inputs:
            out.append(x_t.new_empty(S, N, Fe, len(self.model.closed_form_inputs)))
        if self.cache_context and self._cache is not None:
            ctx, keyed = self._cache
        else:
            # The key rows are identical across samples when cached: encode one copy.
            n = 1 if self.cache_context else S
            *keyed, ctx = self.model(x_t[:n, kr], t[:n], known[:n, kr], is_cat[:n], n_classes[:n],
                                     return_context=True, gaussian_fit=fit, return_inputs=inputs)
            if self.cache_context:
                self._cache = (ctx, keyed)
        for full, part in zip(out, keyed):
            full[:, kr] = part.expand(S, *part.shape[1:])
        rest = torch.ones(N, dtype=torch.bool, device=x_t.device)
        rest[kr] = False
        rest = rest.nonzero().squeeze(1)
        chunk = max(1, self.chunk_rows // S)  # at most chunk_rows rows (over all samples) per pass
        for start in range(0, len(rest), chunk):
            idx = rest[start : start + chunk]
            queried = self.model(x_t[:, idx], t, known[:, idx], is_cat, n_classes, context=ctx, return_inputs=inputs)
            for full, part in zip(out, queried):
                full[:, idx] = part
        return tuple(out)


def point_input(x: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor) -> torch.Tensor:
    """The network input of the one-call point estimate: known cells as they are, unknown numeric cells at
    x_T's mean (0), unknown categorical cells masked. ``is_cat`` broadcasts against ``known`` (e.g. (1, F))."""
    cat = is_cat.expand_as(known)
    return torch.where(known, x, torch.where(cat, torch.full_like(x, MASK), torch.zeros_like(x)))


@torch.no_grad()
def first_call(model, diffusion, x, known, is_cat, n_classes, key_rows, chunk_rows: int = SamplerConfig.chunk_rows,
               return_inputs: bool = False):
    """The network's output at t = T with x_T at its mean: (out (1, N, F), logits (1, N, F, C)), and with
    ``return_inputs`` the closed-form input estimates (1, N, F, k) it was handed (``input_point``).

    Unknown numeric cells enter as 0 instead of a noise draw (``point_input``). At t = T the input carries no
    signal (abar ~ 0); without the draw each query row's output depends only on itself and the key rows
    (deterministic, independent of the batch). It is the point estimate's one call (``one_call``) and the
    draws' shared first call (``sampling.sample(share_first_call=True)``): computed once, it serves both.
    x: (N, F) standardized, known: (N, F) bool, is_cat: (F,) bool, n_classes: (F,) long, key_rows: (K,).
    """
    x_t = point_input(x, known, is_cat[None, :])
    t = torch.full((1,), diffusion.respaced(1).original_t(0), dtype=torch.long, device=x.device)
    den = TableDenoiser(model, is_cat[None], n_classes[None], key_rows, chunk_rows, cache_context=False,
                        return_inputs=return_inputs)
    return den(x_t[None], t, known[None])


def point_estimate(diffusion, output, x, known, is_cat) -> torch.Tensor:
    """The x0 estimate (N, F) read off ``first_call``'s output: class argmax for categorical cells, known cells
    as they are."""
    out, logits = output[:2]
    x0, _ = diffusion.respaced(1).predict_x0_eps(out, point_input(x, known, is_cat[None, :])[None], 0)
    x0 = torch.where(is_cat[None, :].expand_as(known), logits[0].argmax(-1).float(), x0[0])
    return torch.where(known, x, x0)


def views(x: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor, key_rows: torch.Tensor,
          members: tuple[str, ...]) -> dict:
    """{member: (its transform or None, the table (N, F) as that member sees it)} (``transforms.MEMBERS``)."""
    keys = key_rows.to(x.device)  # fitted where the network's own closed-form estimate is: the key rows
    out = {}
    for member in check_members(members):
        transform = YeoJohnson.fit(x[keys], known[keys], is_cat) if member == "yeo_johnson" else None
        out[member] = (transform, x if transform is None else transform.forward(x))
    return out


@torch.no_grad()
def ensemble_point(model, diffusion, x, known, is_cat, n_classes, key_rows, chunk_rows: int, members: tuple[str, ...],
                   outputs: dict | None = None, table_views: dict | None = None,
                   weights: torch.Tensor | None = None, inputs: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The point estimate (N, F) and class logits (N, F, C) averaged over transforms of the table (``transforms``).

    Each member is one ``first_call`` on the table as that member sees it (``table_views``: ``views``' result
    if already made; ``outputs``: member -> that call's output, reused where present and filled in here);
    numeric estimates are averaged in the table's units, class probabilities averaged (the logits returned are
    their logs). One member: its call's estimate in the table's units (``identity``: ``one_call`` exactly).
    ``weights`` (F,): with two members, the second one's weight in each column's numeric estimates (``view_weights``);
    None: equal weights. ``inputs``: the calls made here also return the network's closed-form inputs, for
    ``input_point`` to read from ``outputs``.
    """
    outputs = {} if outputs is None else outputs
    table_views = views(x, known, is_cat, key_rows, members) if table_views is None else table_views
    estimates, prob_sum = [], 0
    for member in members:
        transform, x_m = table_views[member]
        if member not in outputs:
            outputs[member] = first_call(model, diffusion, x_m, known, is_cat, n_classes, key_rows, chunk_rows, inputs)
        output = outputs[member]
        x0 = point_estimate(diffusion, output, x_m, known, is_cat)
        x0 = x0 if transform is None else torch.where(known, x, transform.inverse(x0))  # in the table's units
        if len(members) == 1:
            return x0, output[1][0]
        estimates.append(x0)
        prob_sum = prob_sum + torch.softmax(output[1][0].double(), -1)
    probs = prob_sum / len(members)
    if weights is None:
        numeric = sum(estimates) / len(members)
    else:
        numeric = (1 - weights) * estimates[0].double() + weights * estimates[1].double()
    cat = is_cat[None, :].expand_as(known)
    x0 = torch.where(cat, probs.argmax(-1).to(x.dtype), numeric.to(x.dtype))
    return torch.where(known, x, x0), as_logits(probs).to(x.dtype)


@torch.no_grad()
def view_weights(model, diffusion, x, known, is_cat, n_classes, columns: torch.Tensor, chunk_rows: int,
                 members: tuple[str, ...], folds: int, seed: int, bar=None) -> torch.Tensor | None:
    """Per-column weights (F,) of the second of two ``members`` (``ensemble_point``'s ``weights``), chosen by
    ``folds``-fold cross-validation on the key rows alone (x, known): each numeric one of the ``columns`` (F,)
    bool with at least ``VIEW_MIN_CELLS`` observed cells has them split into ``folds`` seeded parts; each
    part is hidden in turn (in every column at once) and imputed from the rest by each member, and
    ``local_context.choose_weights`` picks the blend (``VIEW_WEIGHT_GRID``) of least squared error over all of
    them. 1/2 (the equal average) elsewhere; None when nothing was measured."""
    numeric = columns.to(x.device) & ~is_cat & (known.sum(0) >= VIEW_MIN_CELLS)
    if len(members) != 2 or not bool(numeric.any()):
        return None
    rng = np.random.default_rng([seed, 4])
    fold = torch.full(known.shape, -1, dtype=torch.long)
    for j in numeric.nonzero().squeeze(1).tolist():
        observed = known[:, j].nonzero().squeeze(1).cpu()
        fold[observed, j] = torch.as_tensor(rng.permutation(len(observed)) % folds)
    fold = fold.to(x.device)
    keys = torch.arange(len(x), device=x.device)
    _extend(bar, folds * len(members) * forward_passes(1, len(x), len(x), chunk_rows, "each"))
    cv = [torch.zeros_like(x, dtype=torch.float64) for _ in members]
    for f in range(folds):
        hide = fold == f
        seen = known & ~hide
        table_views = views(x, seen, is_cat, keys, members)
        for i, member in enumerate(members):
            est, _ = ensemble_point(model, diffusion, x, seen, is_cat, n_classes, keys, chunk_rows, (member,),
                                    table_views={member: table_views[member]})
            cv[i] = torch.where(hide, est.double(), cv[i])
    held = fold >= 0
    probs = torch.zeros(*x.shape, 2, dtype=torch.float64, device=x.device)  # unused: numeric columns only
    weights = choose_weights(x, held, is_cat, (cv[0], probs), (cv[1], probs), VIEW_WEIGHT_GRID)
    return torch.where(held.any(0), weights, 0.5)


def input_point(outputs: dict, table_views: dict, x, known, members: tuple[str, ...], names: tuple[str, ...],
                is_cat: torch.Tensor, key_rows: torch.Tensor, seed: int = 0, tree_rows: torch.Tensor | None = None,
                fitted: tuple[str, ...] | None = None, start: torch.Tensor | None = None,
                chains: int | None = None, sweeps: tuple[int, ...] | None = None,
                first_chain: int = 0) -> list[torch.Tensor]:
    """The numeric estimates (N, F) of the network's closed-form inputs (``names``, its ``closed_form_inputs``: the
    Gaussian conditional mean, the smooth and the sharp nearest-rows estimates), read off the ``members``' first
    calls (``outputs``, made with ``ensemble_point(inputs=True)``), and after them the engine's own
    (``ENGINE_INPUTS``: the kernel ridge regression over the table filled by the Gaussian estimate, fitted on the
    ``key_rows``, and the trees over the table filled by ``start``; the trees once, in the table's units, for every
    view; then the same trees ``extrapolated`` beyond the rows they learnt from), each averaged over the views
    (``table_views``) in the table's units with equal weights; known cells as they are. ``tree_rows``: the rows the
    trees are fitted on (default the ``key_rows``). ``fitted``: the engine's inputs to fit (default all); the others
    stand in as the Gaussian estimate (for a blend that gives them no weight). ``start`` (N, F): the network's
    estimate in the table's units, known cells as they are (``ensemble_point``'s), which the trees' chains start from
    where ``TREES_START_NETWORK`` is set (None: the Gaussian estimate). ``chains`` and ``sweeps``: the trees' chains
    and each one's sweeps (``tree_regression.chain_fills``; None: ``tree_regression.CHAINS`` and ``TREES``; the final
    call: ``FINAL_CHAINS`` and ``FINAL_TREES``), the trees the mean of those from chain ``first_chain`` on."""
    fitted = ENGINE_INPUTS if fitted is None else fitted
    per_member, trees, beyond = [], None, None
    for member in members:
        transform, x_m = table_views[member]
        estimates = outputs[member][2][0].unbind(-1)  # k of (N, F), in the view's units
        estimates = [torch.where(known, x_m, e) for e in estimates]
        filled = estimates[names.index("gaussian")] if "gaussian" in names else None
        if "kernel" in ENGINE_INPUTS and filled is not None:
            kernel = "kernel" in fitted
            estimates.append(kernel_estimates(filled, known, is_cat, key_rows.to(x.device), seed) if kernel else filled)
        if transform is not None:
            estimates = [torch.where(known, x, transform.inverse(e)) for e in estimates]
        if set(TREE_INPUTS) & set(ENGINE_INPUTS) and filled is not None:
            filled = estimates[names.index("gaussian")]  # in the table's units
            if trees is None and set(TREE_INPUTS) & set(fitted):  # one fit for every view: trees do not see
                rows = (key_rows if tree_rows is None else tree_rows).to(x.device)  # monotone transforms
                begin = start if TREES_START_NETWORK and start is not None else filled
                trees = tree_estimates(begin, known, is_cat, rows, seed, chains, sweeps, first_chain)
                beyond = extrapolated(trees, known, is_cat, rows) if "extrapolated" in fitted else None
            for name, estimate in zip(TREE_INPUTS, (trees, beyond)):
                if name in ENGINE_INPUTS:
                    estimates.append(filled if estimate is None else estimate)
        per_member.append(estimates)
    return [sum(same) / len(members) for same in zip(*per_member)]


@torch.no_grad()
def blended_point(model, diffusion, x, known, is_cat, n_classes, key_rows, chunk_rows: int, members: tuple[str, ...],
                  table_views: dict, outputs: dict, view_weights: torch.Tensor | None,
                  blend: InputBlend | None, level_rows: torch.Tensor | None = None,
                  tree_rows: torch.Tensor | None = None):
    """``ensemble_point``'s estimate and logits, its numeric estimates blended with the network's closed-form
    inputs as ``blend`` says (``input_weights``, ``blend_with_inputs``, read off the same calls: ``input_point``,
    the trees fitted on ``tree_rows``) unless None."""
    x0, logits = ensemble_point(model, diffusion, x, known, is_cat, n_classes, key_rows, chunk_rows, members, outputs,
                                table_views, view_weights, inputs=blend is not None)
    if blend is not None:
        taken = blend.weights[:, 1 + len(model.closed_form_inputs):].ne(0).any(0).tolist()
        fitted = tuple(name for name, used in zip(ENGINE_INPUTS, taken) if used)  # none fitted for no weight
        others = input_point(outputs, table_views, x, known, members, model.closed_form_inputs, is_cat, key_rows,
                             tree_rows=tree_rows, fitted=fitted, start=x0, chains=FINAL_CHAINS, sweeps=FINAL_TREES)
        names = model.closed_form_inputs
        gaussian = others[names.index("gaussian")] if "gaussian" in names else None
        x0 = blend_with_inputs(x0, others, known, is_cat, blend.weights, level_rows, blend.own_level, gaussian)
        if blend.levels is not None and bool(blend.levels.gt(0).any()):
            trees, fitted = level_inputs(outputs, table_views, x, known, is_cat, logits.shape[-1], members,
                                         model.closed_form_inputs, key_rows if tree_rows is None else tree_rows,
                                         columns=blend.levels.gt(0))
            w = torch.where(fitted, blend.levels, 0.0)[None, :, None]  # (1, F, 1)
            probs = (1 - w) * torch.softmax(logits.double(), -1) + w * trees
            mixed = ~known & (is_cat & fitted)[None, :]
            x0 = torch.where(mixed, probs.argmax(-1).to(x0.dtype), x0)
            logits = torch.where(mixed[..., None], as_logits(probs).to(logits.dtype), logits)
    return x0, logits


def blend_with_inputs(x0: torch.Tensor, inputs: list[torch.Tensor], known: torch.Tensor, is_cat: torch.Tensor,
                      weights: torch.Tensor, level_rows: torch.Tensor | None = None,
                      own_level: torch.Tensor | None = None, gaussian: torch.Tensor | None = None) -> torch.Tensor:
    """The network's numeric estimates x0 (N, F) blended per column with its ``inputs``' (``input_point``) by
    ``weights`` (F, 1 + len(inputs)), each input first shifted so that its mean over the column's unknown cells
    is the network's: the blend takes the inputs' shape of the relation, not their level. The network reads
    the level off the missingness itself (a column missing its high values under MNAR), which no estimate
    fitted to the observed cells can. Each input still keeps its own departure from the level of the ``gaussian``
    estimate (N, F), the linear one the network reads its shift against (None: none kept), weighted by
    ``DEPARTURE_SHARE``'s rule (the missing share counted on the ``level_rows``): the blend's level is the network's
    plus what the inputs read of the relation beyond the linear one on the rows that miss the column. Where
    ``own_level`` (F,) bool is set (``input_weights``: the network read no such shift there) the inputs keep their own
    levels. ``level_rows`` (N,) bool: the rows whose unknown cells measure the level (None: all); a column with none
    there keeps the network's estimate."""
    unknown = ~known if level_rows is None else ~known & level_rows[:, None]
    count = unknown.sum(0)

    def level(e: torch.Tensor) -> torch.Tensor:
        return torch.where(unknown, e.double(), 0.0).sum(0) / count.clamp(min=1)

    own = torch.zeros(x0.shape[1], dtype=torch.bool, device=x0.device) if own_level is None else own_level
    kept, linear = 0.0, 0.0  # (F,): the share of each input's departure from the Gaussian level it keeps; that level
    if gaussian is not None and DEPARTURE_SHARE:  # the missing share of the level rows, as the level itself
        rows = len(known) if level_rows is None else int(level_rows.sum())
        kept = (1 - count.double() / max(rows, 1) / DEPARTURE_SHARE).clamp(0, 1)
        linear = level(gaussian)
    network = level(x0)
    out = weights[:, 0] * x0.double()
    for k, est in enumerate(inputs, 1):
        own_reading = level(est)
        shift = own_reading - network - kept * (own_reading - linear)
        out = out + weights[:, k] * (est.double() - torch.where(own, 0.0, shift))
    keep = known | is_cat[None, :] | (count == 0)[None, :]
    return torch.where(keep, x0, out.to(x0.dtype))


def input_grid(n: int) -> torch.Tensor:
    """(W, n) every weight n-tuple on the simplex grid of step ``INPUT_WEIGHT_STEP``, the network's alone first."""
    steps = round(1 / INPUT_WEIGHT_STEP)
    grid = [w for w in itertools.product(range(steps + 1), repeat=n) if sum(w) == steps]
    grid.sort(key=lambda w: -w[0])
    return torch.tensor(grid, dtype=torch.float64) / steps


class InputBlend(NamedTuple):
    """How ``blend_with_inputs`` blends each column (``input_weights``): weights (F, 1 + k) of the network's estimate
    and its k closed-form inputs, own_level (F,) bool, the columns whose inputs keep their own levels, and levels
    (F,) the trees' weight in each categorical column's class probabilities (``level_inputs``; None: 0)."""

    weights: torch.Tensor
    own_level: torch.Tensor
    levels: torch.Tensor | None = None


def level_inputs(outputs: dict, table_views: dict, x, known, is_cat, n_levels: int, members: tuple[str, ...],
                 names: tuple[str, ...], tree_rows: torch.Tensor, seed: int = 0,
                 columns: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The trees' class probabilities (N, F, ``n_levels``) of the unknown categorical cells and the columns (F,) bool
    that have them (``tree_probabilities``, fitted on ``tree_rows``, ``columns`` (F,) bool: the columns to fit, default
    all), their numeric features the network's Gaussian input (read off the first member's call, ``outputs``, in the
    table's units)."""
    transform, x_m = table_views[members[0]]
    gaussian = torch.where(known, x_m, outputs[members[0]][2][0][..., names.index("gaussian")])
    if transform is not None:
        gaussian = torch.where(known, x, transform.inverse(gaussian))
    return tree_probabilities(gaussian, known, is_cat, n_levels, tree_rows, seed, columns)


def key_rows_fit(pretrained: Pretrained, n_rows: int, key_rows: np.ndarray) -> dict:
    """``gaussian_feature.cell_estimates``' settings for a table of ``n_rows`` rows (a batch of one) whose Gaussian
    is fitted to its ``key_rows``, as the network's closed-form input is at inference (EM until it converges)."""
    key_mask = torch.zeros(1, n_rows, dtype=torch.bool)
    key_mask[0, torch.as_tensor(key_rows)] = True
    return {"key_mask": key_mask, **converged_em(pretrained.model.cfg.gaussian_em_iters)}


def target_trees(pretrained: Pretrained, x: np.ndarray, known: np.ndarray, is_cat: np.ndarray,
                 n_classes: np.ndarray, key_rows: np.ndarray, target: int, n_levels: int, seed: int = 0) -> torch.Tensor:
    """The trees' estimate of the ``target`` column's unknown cells (``tree_regression.target_estimates``: (N,)
    values or (N, ``n_levels``) class probabilities), fitted on the ``key_rows`` of the
    table x, known (N, F), their numeric features' unknown cells filled by the Gaussian conditional mean fitted to
    the key rows' numeric cells (the network's input, by EM until it converges)."""
    xt, kt = torch.as_tensor(x), torch.as_tensor(known)
    cat, ncl = torch.as_tensor(is_cat), torch.as_tensor(n_classes).long()
    gaussian = cell_estimates(xt[None], kt[None], cat[None], ncl[None], 2, categorical=False,
                              **key_rows_fit(pretrained, len(x), key_rows))[0][0]
    filled = torch.where(kt, xt, gaussian)
    return target_estimates(filled, kt, cat, n_levels, torch.as_tensor(key_rows), target, seed)


def key_range_edges(x: np.ndarray, known: np.ndarray, is_cat: np.ndarray, key_rows: np.ndarray) -> np.ndarray:
    """x with every row's known numeric cells clipped to the ``key_rows``' observed range of their column (a column
    the key rows never show is left as it is)."""
    keys = np.asarray(key_rows)
    seen = known[keys] & ~is_cat
    lo = np.where(seen, x[keys], np.inf).min(0)
    hi = np.where(seen, x[keys], -np.inf).max(0)
    clip = known & (seen.any(0) & ~is_cat)[None, :]
    return np.where(clip, np.clip(x, np.minimum(lo, hi), hi), x).astype(x.dtype)


def linear_target(pretrained: Pretrained, tables: list[np.ndarray], known: np.ndarray, is_cat: np.ndarray,
                  n_classes: np.ndarray, key_rows: np.ndarray, target: int,
                  asked: np.ndarray | None = None) -> list[torch.Tensor]:
    """(N,) the ``target`` column's closed-form estimate in each of the ``tables`` (N, F): the Gaussian conditional
    mean fitted once to the first table's ``key_rows`` with the cells ``known`` (categorical columns one-hot, EM
    until it converges: the network's input at inference), a linear fit of the target on each row's cells
    ``asked`` (default ``known``; a known target cell is returned as it is)."""
    cat, ncl = torch.as_tensor(is_cat)[None], torch.as_tensor(n_classes).long()[None]
    settings = key_rows_fit(pretrained, len(known), key_rows)
    levels, out = max(int(ncl.max()), 1), []
    fit = cell_estimates(torch.as_tensor(tables[0])[None], torch.as_tensor(known)[None], cat, ncl, levels,
                         **settings)[2]
    asked = torch.as_tensor(known if asked is None else asked)[None]
    for table in tables:
        out.append(cell_estimates(torch.as_tensor(table)[None], asked, cat, ncl, levels, fit, **settings)[0][0, :, target])
    return out


def linear_extrapolation(pretrained: Pretrained, x: np.ndarray, edges: np.ndarray, known: np.ndarray,
                         is_cat: np.ndarray, n_classes: np.ndarray, key_rows: np.ndarray, target: int) -> torch.Tensor:
    """(N,) the ``target`` column's closed-form estimate (``linear_target``) at the rows x less at their ``edges``
    (``key_range_edges``): 0 for a row inside the key rows' range (``impute``'s ``extrapolate``)."""
    at, edge = linear_target(pretrained, [x, edges], known, is_cat, n_classes, key_rows, target)
    return at - edge


@torch.no_grad()
def input_weights(model, diffusion, x, known, is_cat, n_classes, columns: torch.Tensor, chunk_rows: int,
                  members: tuple[str, ...], view_weights: torch.Tensor | None, seed: int,
                  bar=None, odds: np.ndarray | None = None, key_rows: torch.Tensor | None = None,
                  at_random: np.ndarray | None = None) -> InputBlend | None:
    """Per-column weights (F, 1 + k) of ``blend_with_inputs`` with the network's k closed-form inputs
    (``Denoiser.closed_form_inputs``), chosen on the rows x, known (N, F) of the call it stands for, its
    ``key_rows`` (None: every row) the network's context and the kernel regression's fit, every row the trees'
    (as ``blended_point``'s): in each numeric one of the
    ``columns`` (F,) bool, ``CALIBRATION_FRAC`` of its observed cells are hidden as well and imputed by the
    network (its views weighted by ``view_weights``) and by each input (``input_point``: the same calls); a
    column takes the grid blend (``input_grid``) of least squared error about its held cells' mean error (the inputs are
    shifted to the network's level where used, so their level is not theirs to win on), plus
    ``INPUT_PRIOR_CELLS`` pseudo-cells of the table's mean such error per cell. Where the network's mean
    over the column's unknown cells is within ``LEVEL_AGREEMENT`` of the Gaussian estimate's, or within
    ``LEVEL_CONSISTENCY`` standard deviations of its cells' departures from it (it read no shift off the
    missingness), the inputs keep their own levels (``own_level``) and the plain squared error chooses: a
    column missing where the other columns are extreme (MAR) is then filled at the level of the estimate that
    extrapolates best into those rows (on quakes, the nearest rows' where the linear one overshoots). So do the
    ``at_random`` (F,) bool columns (``missing_by_others``: the other columns predict their missingness beyond their
    own prediction of the column, MAR), whatever the network read. The
    network's alone where nothing was measured; None without inputs. The sharp nearest-rows estimate is offered only where it
    lowers the table's pooled held-out loss by its ``INPUT_MIN_GAIN`` (tables of near-duplicate rows), the kernel
    regression and the trees likewise. The trees are judged by the mean of ``HELD_CHAINS`` chains where their
    first ``tree_regression.CHAINS`` show them helping. With ``CATEGORICAL_TREES``, in each categorical one of the
    ``columns`` as many observed cells are hidden in the same call, and the column takes the weight of
    ``LEVEL_WEIGHT_GRID`` in (1 - w) network + w trees' class probabilities (``level_inputs``) of least log loss
    over them (``local_context.choose_weights``), the trees offered where they lower the table's pooled log loss by
    ``LEVEL_MIN_GAIN`` (``InputBlend.levels``). ``odds``
    (N, F): the held cells are drawn with these weights (``missingness_odds``), so that they sit where the
    table's missing cells do; None: uniformly."""
    numeric = (columns.to(x.device) & ~is_cat).cpu().numpy()
    hold = hold_out(known.cpu().numpy(), numeric, np.random.default_rng([seed, 5]), INPUT_HOLD_FRAC, weights=odds)
    levels = CATEGORICAL_TREES and "gaussian" in model.closed_form_inputs
    if levels:  # categorical cells held as well (with the same odds), for the trees' weight in their probabilities
        categorical = (columns.to(x.device) & is_cat).cpu().numpy()
        hold |= hold_out(known.cpu().numpy(), categorical, np.random.default_rng([seed, 6]), weights=odds)
    hold = torch.as_tensor(hold, device=x.device)
    if not bool(hold.any()) or not model.closed_form_inputs:
        return None
    seen = known & ~hold
    every = torch.arange(len(x), device=x.device)
    keys = every if key_rows is None else key_rows.to(x.device)
    table_views, outputs = views(x, seen, is_cat, keys, members), {}
    _extend(bar, len(members) * forward_passes(1, len(x), len(keys), chunk_rows, "each"))
    net, logits = ensemble_point(model, diffusion, x, seen, is_cat, n_classes, keys, chunk_rows, members, outputs,
                                 table_views, view_weights, inputs=True)
    level_weights = None
    held_levels = hold & is_cat[None, :]
    if levels and bool(held_levels.any()):
        trees, fitted = level_inputs(outputs, table_views, x, seen, is_cat, logits.shape[-1], members,
                                     model.closed_form_inputs, every, seed, columns.to(x.device))
        held_levels = held_levels & fitted[None, :]
        probs = torch.softmax(logits.double(), -1)
        level_weights = choose_weights(x, held_levels, is_cat, (net, probs), (net, trees), LEVEL_WEIGHT_GRID,
                                       LEVEL_PRIOR_CELLS)
        codes = torch.where(held_levels, x, 0).round().long()[..., None]  # (N, F, 1): the held cells' levels
        p_net, p_trees = (p.gather(-1, codes)[..., 0] for p in (probs, trees))  # (N, F): their probabilities
        w = level_weights[None, :]
        gain = (((1 - w) * p_net + w * p_trees).clamp(min=1e-12).log() - p_net.clamp(min=1e-12).log())[held_levels]
        loss = -p_net.clamp(min=1e-12).log()[held_levels].sum()
        if bool(gain.sum() < LEVEL_MIN_GAIN * loss) or not beats_noise(gain, LEVEL_GAIN_SE):
            level_weights = torch.zeros_like(level_weights)  # the table's held cells do not ask for the trees
    hold = hold & ~is_cat[None, :]  # the numeric inputs' weights from the numeric held cells
    cells = hold.sum(0).double()  # (F,)
    measured = cells > 0
    others = input_point(outputs, table_views, x, seen, members, model.closed_form_inputs, is_cat, keys,
                         tree_rows=every, start=net)
    names = (*model.closed_form_inputs, *ENGINE_INPUTS)[: len(others)]  # the grid's columns after the network's
    own_level = torch.zeros_like(measured)
    if "gaussian" in names:
        # Where the network's level over the column's unknown cells is the Gaussian estimate's, it read no shift
        # off the missingness: the inputs keep their own levels, judged on the held cells with their shapes.
        own_level = read_no_shift(net, others[names.index("gaussian")], ~seen & ~is_cat[None, :])
        if at_random is not None:  # missing because of the other columns: they, not a shift, set the level
            own_level = own_level | torch.as_tensor(at_random, device=x.device)
        own_level = own_level & measured

    def held_losses(others: list[torch.Tensor]):
        """The grid of blends (W, K), their errors (W, N, F), mean errors (W, F) and losses (W, F) over the held
        cells (the plain squared error in the ``own_level`` columns: the level counts too)."""
        grid = input_grid(1 + len(others)).to(x.device)  # (W, K)
        estimates = torch.stack([net.double(), *(e.double() for e in others)])  # (K, N, F)
        error = torch.einsum("wk,knf->wnf", grid, estimates) - x.double()[None]  # (W, N, F)
        mean_error = torch.where(hold[None], error, 0.0).sum(1) / cells.clamp(min=1)  # (W, F)
        loss = torch.where(hold[None], (error - mean_error[:, None, :]) ** 2, 0.0).sum(1)  # (W, F)
        plain = torch.where(hold[None], error ** 2, 0.0).sum(1)  # (W, F)
        return grid, error, mean_error, torch.where(own_level[None], plain, loss)

    grid, error, mean_error, loss = held_losses(others)
    trees = [1 + names.index(n) for n in TREE_INPUTS if n in names]  # the grid's columns of the trees' inputs
    if HELD_CHAINS > tree_regression.CHAINS and trees and bool(measured.any()):
        uses = grid[:, trees].gt(0).any(1)  # (W,)
        pooled = loss[:, measured].sum(1)
        if bool(pooled[uses].min() < pooled[~uses].min()):  # the trees help: judge them by the mean of more chains
            first = tree_regression.CHAINS
            more = input_point(outputs, table_views, x, seen, members, model.closed_form_inputs, is_cat, keys,
                               tree_rows=every, fitted=("trees",), start=net, chains=HELD_CHAINS, first_chain=first)
            i = names.index("trees")
            mean = (first * others[i].double() + (HELD_CHAINS - first) * more[i].double()) / HELD_CHAINS
            others[i] = torch.where(seen, x, mean.to(x.dtype))
            if "extrapolated" in names:
                others[names.index("extrapolated")] = extrapolated(others[i], seen, is_cat, every)
            grid, error, mean_error, loss = held_losses(others)
    for name, gain in INPUT_MIN_GAIN.items():  # gated inputs, offered where the table's held cells ask for them
        if name in names and bool(measured.any()):
            family = TREE_INPUTS if name == "trees" else (name,)  # the trees' gate: either of their inputs
            uses = grid[:, [1 + names.index(n) for n in family if n in names]].gt(0).any(1)  # (W,)
            pooled = loss[:, measured].sum(1)
            if bool(pooled[uses].min() > (1 - gain) * pooled[~uses].min()) or not significant(
                    error, mean_error, own_level, hold & measured[None, :], pooled, uses):
                loss = torch.where(uses[:, None], torch.inf, loss)
    chosen = soft_choice(loss, cells, measured, INPUT_PRIOR_CELLS, grid, INPUT_SOFT_CELLS)  # (F, K)
    return InputBlend(torch.where(measured[:, None], chosen, grid[0]), own_level, level_weights)


def read_no_shift(network: torch.Tensor, gaussian: torch.Tensor, unknown: torch.Tensor) -> torch.Tensor:
    """(F,) bool: the columns where the network's estimates (N, F) read no shift off the missingness against the
    Gaussian estimate's (N, F) over the ``unknown`` (N, F) cells: their mean departure within ``LEVEL_AGREEMENT``,
    or within ``LEVEL_CONSISTENCY`` standard deviations of the cells' departures (no consistent shift)."""
    count = unknown.sum(0)
    departure = torch.where(unknown, network.double() - gaussian.double(), 0.0)
    gap = departure.sum(0) / count.clamp(min=1)
    spread = (torch.where(unknown, departure - gap, 0.0) ** 2).sum(0) / (count - 1).clamp(min=1)
    return (gap.abs() <= LEVEL_AGREEMENT) | (gap.abs() < LEVEL_CONSISTENCY * spread.sqrt())


def significant(error: torch.Tensor, mean_error: torch.Tensor, own_level: torch.Tensor, held: torch.Tensor,
                pooled: torch.Tensor, uses: torch.Tensor) -> bool:
    """Whether the best blend of the grid that ``uses`` (W,) bool an input beats the best that does not by more
    than ``INPUT_GAIN_SE`` paired standard errors of their difference over the ``held`` (N, F) cells: ``error``
    (W, N, F) and ``mean_error`` (W, F) as in ``input_weights``, a cell's loss its error about its column's mean
    error, or the plain one in ``own_level`` (F,) columns; ``pooled`` (W,) the blends' summed losses."""
    if not INPUT_GAIN_SE:
        return True
    best = [torch.where(mask, pooled, torch.inf).argmin() for mask in (uses, ~uses)]
    cell = [torch.where(own_level[None, :], error[w], error[w] - mean_error[w][None, :]) ** 2 for w in best]
    gain = (cell[1] - cell[0])[held]  # (H,) per held cell: positive where the input's blend is better
    return beats_noise(gain, INPUT_GAIN_SE)


def beats_noise(gain: torch.Tensor, standard_errors: float) -> bool:
    """Whether the summed per-cell ``gain`` (H,) exceeds ``standard_errors`` paired standard errors of that sum (never
    with fewer than two cells)."""
    return len(gain) >= 2 and bool(gain.sum() > standard_errors * gain.std() * len(gain) ** 0.5)


def check_ensemble_folds(folds) -> None:
    """A one-line ValueError unless ``folds`` is a valid ``ensemble_folds``: None (the checkpoint's), 0 (off) or an
    integer >= 2."""
    if folds is not None and (not isinstance(folds, (int, np.integer)) or isinstance(folds, bool) or folds < 0
                              or folds == 1):
        raise ValueError(f"ensemble_folds must be 0 (off), an integer >= 2 or None (the checkpoint's), got {folds!r}")


def as_logits(probs: torch.Tensor) -> torch.Tensor:
    """Class probabilities (..., C) as logits: their logs, -1e4 (the network's "no level") where 0."""
    return torch.where(probs > 0, probs.log(), torch.full_like(probs, -1e4))


def hold_out(known: np.ndarray, columns: np.ndarray, rng: np.random.Generator,
             frac: float = CALIBRATION_FRAC, weights: np.ndarray | None = None) -> np.ndarray:
    """(N, F) bool: observed cells hidden to measure the engine on this table (``spread_scales``,
    ``local_weights``, ``input_weights``): in each of the ``columns`` (F,) bool, ``frac`` of its observed cells
    (at least ``CALIBRATION_MIN_CELLS``, always leaving two observed), drawn with ``rng``, uniformly or with
    probabilities proportional to ``weights`` (N, F) (``missingness_odds``)."""
    hold = np.zeros_like(known)
    for j in np.flatnonzero(columns):
        observed = np.flatnonzero(known[:, j])
        k = min(max(CALIBRATION_MIN_CELLS, round(frac * len(observed))), len(observed) - 2)
        if k > 0:
            p = None if weights is None else weights[observed, j] / weights[observed, j].sum()
            hold[rng.choice(observed, k, replace=False, p=p), j] = True
    return hold


def match_rows(n: int, seed: int) -> np.ndarray:
    """The rows (sorted indices) the missingness fits (``missingness_odds``, ``missing_by_others``) are fitted on: every
    one of n, or a subsample of ``MATCH_FIT_ROWS`` drawn with ``seed`` beyond that."""
    if n <= MATCH_FIT_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 7]).choice(n, MATCH_FIT_ROWS, replace=False))


def missingness_odds(x: np.ndarray, known: np.ndarray, is_cat: np.ndarray, columns: np.ndarray,
                     seed: int = 0) -> np.ndarray:
    """(N, F) weights under which a column's observed cells look like its missing ones: in each of the
    ``columns`` (F,) bool, the odds P(missing | row) / P(observed | row) of a ridge logistic regression of the
    column's missingness on the row's other numeric cells (standardized ``x``, unknown cells at 0), clipped to
    ``MATCH_ODDS_RANGE`` times their median over the column's observed cells. Cells held with these weights
    (``hold_out``) sit where the table's missing cells sit when the missingness depends on what is observed
    (MAR: the rows whose other values are extreme); under MCAR the fit is flat and they are held about
    uniformly. 1 elsewhere. Fitted on at most ``MATCH_FIT_ROWS`` rows (a subsample drawn with ``seed``)."""
    weights = np.ones(x.shape, dtype=np.float64)
    numeric = np.flatnonzero(~is_cat)
    z = np.where(known, x, 0.0)[:, numeric].astype(np.float64)
    fit = match_rows(len(z), seed)
    for j in np.flatnonzero(columns):
        missing = ~known[:, j]
        if not missing[fit].any() or missing[fit].all():
            continue
        design = np.column_stack([np.ones(len(z)), np.delete(z, np.flatnonzero(numeric == j), axis=1)])
        beta = np.zeros(design.shape[1])
        penalty = np.full(design.shape[1], MATCH_RIDGE)
        penalty[0] = 0.0  # the intercept is not shrunk
        d, m = design[fit], missing[fit]
        for _ in range(MATCH_NEWTON_STEPS):  # Newton's method on the penalized log-likelihood
            p = 1.0 / (1.0 + np.exp(-np.clip(d @ beta, -30, 30)))
            grad = d.T @ (m - p) - penalty * beta
            hess = (d * (p * (1 - p))[:, None]).T @ d + np.diag(penalty)
            beta += np.linalg.solve(hess, grad)
        odds = np.exp(np.clip(design @ beta, -30, 30))
        median = np.median(odds[known[:, j]])
        weights[:, j] = odds.clip(median * MATCH_ODDS_RANGE[0], median * MATCH_ODDS_RANGE[1])
    return weights


def missing_by_others(x: np.ndarray, known: np.ndarray, is_cat: np.ndarray, columns: np.ndarray,
                      seed: int = 0) -> np.ndarray:
    """(F,) bool: the numeric ``columns`` whose missingness the table's other cells (numeric ones standardized in ``x``,
    unknown cells at 0; categorical ones as indicators of their levels, ``MAR_TEST_CATEGORICAL``) predict beyond their
    linear prediction of the column itself (an F test, ``MAR_TEST_LOG10P``):
    least squares of the missingness on the other columns against on that prediction (fitted on the column's observed
    rows) alone, on at most ``MATCH_FIT_ROWS`` rows (a subsample drawn with ``seed``, as ``missingness_odds``'s)."""
    from scipy.stats import f as f_distribution

    found = np.zeros(x.shape[1], dtype=bool)
    numeric = np.flatnonzero(~is_cat)
    if not MAR_TEST_LOG10P:
        return found
    rows = match_rows(len(x), seed)
    z, seen = np.where(known, x, 0.0)[rows].astype(np.float64), known[rows]
    levels = [np.zeros((len(rows), 0))]
    if MAR_TEST_CATEGORICAL:  # the categorical columns' levels as indicators (unknown cells: none), all but the first
        for c in np.flatnonzero(is_cat):
            codes = np.unique(z[seen[:, c], c])[1:MAR_TEST_MAX_LEVELS + 1]
            levels.append(seen[:, c, None] & (z[:, c, None] == codes[None, :]))
    levels = np.concatenate(levels, axis=1).astype(np.float64)

    def residual(design: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        coef, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
        r = y - design @ coef
        return float(r @ r), int(rank)

    for j in np.flatnonzero(columns & ~is_cat):
        missing, observed = (~seen[:, j]).astype(np.float64), seen[:, j]
        design = np.column_stack([np.ones(len(z)), z[:, numeric[numeric != j]], levels])
        if observed.sum() <= design.shape[1] or not missing.any():
            continue
        prediction = design @ np.linalg.lstsq(design[observed], z[observed, j], rcond=None)[0]
        full, rank = residual(design, missing)
        alone, _ = residual(np.column_stack([np.ones(len(z)), prediction]), missing)
        extra, dof = rank - 2, len(z) - rank
        if extra < 1 or dof < 1 or full <= 0:
            continue
        statistic = (alone - full) / extra / (full / dof)
        found[j] = f_distribution.logsf(statistic, extra, dof) < -MAR_TEST_LOG10P * math.log(10)
    return found


def _extend(bar, passes: int) -> None:
    """Add ``passes`` forward passes to a progress bar's total (none: no bar)."""
    if bar is not None:
        bar.total += passes
        bar.refresh()


@torch.no_grad()
def local_point(model, diffusion, x, known, is_cat, n_classes, global_x0, candidates, whole_table: bool,
                chunk_rows: int, members: tuple[str, ...], context_rows: int, query_rows: int, seed: int,
                bar=None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The local point estimate (N, F) and class probabilities (N, F, C) of every row with an unknown cell:
    the call of the ``members``' views on the row's local sub-table (``local_context.local_tables``: its group and the
    ``context_rows`` candidate rows nearest to it; numeric columns standardized on its key rows). None when
    the candidates make one context only. x, known: the whole table (N, F); global_x0: its global point
    estimate (it places the rows); candidates, whole_table: as ``local_tables``."""
    filled = torch.where(known, x, global_x0)
    tables = local_tables(filled, known, is_cat, n_classes, candidates, whole_table, context_rows, query_rows, seed)
    if not tables:
        return None
    _extend(bar, len(members) * sum(forward_passes(1, len(r), int(k.sum()), chunk_rows, "each") for r, _, k in tables))
    x0 = filled.clone()
    probs = torch.zeros(*x.shape, max(2, int(n_classes.max())), dtype=torch.float64, device=x.device)
    for rows, take, keys in tables:
        xl, kl = x[rows], known[rows]
        mean, std = standardize(xl[keys], kl[keys], is_cat)  # on the context, as every fit of the call
        est, logits = ensemble_point(model, diffusion, torch.where(kl, (xl - mean) / std, xl), kl, is_cat,
                                     n_classes, keys.nonzero().squeeze(1), chunk_rows, members)
        est = torch.where(is_cat[None, :], est, est * std + mean)
        x0[rows[take]] = est[take]
        probs[rows[take]] = torch.softmax(logits[take].double(), -1)
    return torch.where(known, x, x0), probs


@torch.no_grad()
def local_weights(model, diffusion, x, known, is_cat, n_classes, columns: np.ndarray, global_members: tuple[str, ...],
                  chunk_rows: int, members: tuple[str, ...], context_rows: int, query_rows: int, seed: int,
                  bar=None, view_weights: torch.Tensor | None = None,
                  inputs: InputBlend | None = None) -> torch.Tensor:
    """Per-column weights (F,) of the local estimate against the global one, chosen on the context: on the key
    rows alone (x, known), ``CALIBRATION_FRAC`` of the observed cells of each of the ``columns`` (those with
    cells to impute) are hidden as well and imputed both ways: globally as the estimate the weights will blend
    (the ``global_members``' views weighted by ``view_weights``, blended with the network's closed-form inputs by
    their ``input_weights`` ``inputs``), locally with the ``members``' views. ``local_context.choose_weights`` picks the
    blend. 0 where nothing was measured."""
    hold = torch.as_tensor(hold_out(known.cpu().numpy(), columns, np.random.default_rng([seed, 2])), device=x.device)
    weights = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    if not bool(hold.any()):
        return weights
    seen = known & ~hold
    keys = torch.arange(len(x), device=x.device)
    _extend(bar, len(global_members) * forward_passes(1, len(x), len(x), chunk_rows, "each"))
    x0, logits = blended_point(model, diffusion, x, seen, is_cat, n_classes, keys, chunk_rows, global_members,
                               views(x, seen, is_cat, keys, global_members), {}, view_weights, inputs)
    local = local_point(model, diffusion, x, seen, is_cat, n_classes, x0, keys, True, chunk_rows, members,
                        context_rows, query_rows, seed, bar)
    if local is None:
        return weights
    return choose_weights(x, hold, is_cat, (x0, torch.softmax(logits.double(), -1)), local)


@torch.no_grad()
def one_call(model, diffusion, x, known, is_cat, n_classes, key_rows, chunk_rows: int = SamplerConfig.chunk_rows):
    """x0 estimate (N, F) and class logits (N, F, C) of every cell from one network call at t = T.

    This is ``sample(method="ddim", n_steps=1)`` with x_T at its mean (``first_call``).
    x: (N, F) standardized, known: (N, F) bool, is_cat: (F,) bool, n_classes: (F,) long, key_rows: (K,).
    """
    output = first_call(model, diffusion, x, known, is_cat, n_classes, key_rows, chunk_rows)
    return point_estimate(diffusion, output, x, known, is_cat), output[1][0]


@torch.no_grad()
def impute_standardized(
    model: Denoiser,
    diffusion: GaussianDiffusion,
    x: torch.Tensor,
    known: torch.Tensor,
    is_cat: torch.Tensor,
    n_classes: torch.Tensor,
    *,
    n_samples: int = 1,
    method: str = "ddim",
    n_steps: int = 1,
    jump_length: int = 1,
    jump_n_sample: int = 1,
    max_context_rows: int = SamplerConfig.max_context_rows,
    chunk_rows: int = SamplerConfig.chunk_rows,
    generator: torch.Generator | None = None,
    key_rows: torch.Tensor | None = None,
    variance_mix: float = SamplerConfig.variance_mix,
    share_first_call: bool = False,
    draw_key_rows: torch.Tensor | None = None,
    first_output: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Imputations (n_samples, N, F) of one standardized table.

    x: (N, F) standardized values (codes for categorical columns; anything at unknown cells).
    known: (N, F) bool; is_cat: (F,) bool; n_classes: (F,) long. Known cells are returned bit for bit.
    share_first_call: the samples' first call at t = T is made once (``sampling.sample``); not for RePaint.
    draw_key_rows: with a shared first call, the key rows of the later calls (None = ``key_rows``).
    first_output: with a shared first call, its output if already computed (``first_call`` on ``key_rows``).
    """
    generator = generator or torch.Generator().manual_seed(0)
    model.eval()
    if key_rows is None:
        key_rows = choose_key_rows(known.cpu(), max_context_rows, generator)
    share = share_first_call and method != "repaint"

    def denoiser(keys: torch.Tensor) -> TableDenoiser:
        cache = method != "repaint" and bool(known[keys.to(known.device)].all())
        return TableDenoiser(model, is_cat[None], n_classes[None], keys, chunk_rows, cache)

    first = den = denoiser(key_rows)
    if share and first_output is not None:
        first = lambda *_: first_output  # the shared call, made by the caller
    if share and draw_key_rows is not None and not torch.equal(draw_key_rows, key_rows):
        den = denoiser(draw_key_rows)
    x_rep = x[None].expand(n_samples, -1, -1).contiguous()
    k_rep = known[None].expand(n_samples, -1, -1)
    return sample(
        den, diffusion, x_rep, k_rep, method=method, n_steps=n_steps, jump_length=jump_length,
        jump_n_sample=jump_n_sample, generator=generator, is_cat=is_cat[None, None, :], clip=CLIP,
        variance_mix=variance_mix, share_first_call=share, first_denoiser=first,
    )


def forward_passes(n_samples: int, n_rows: int, n_keys: int, chunk_rows: int, key_pass: str) -> int:
    """Forward passes of one ``TableDenoiser`` call on ``n_samples`` copies of an ``n_rows`` table.

    key_pass: "each" (key rows encoded with every sample group), "once" (encoded once, then cached) or
    "none" (the cache is already filled)."""
    group = max(1, chunk_rows // n_keys)
    sizes = [min(group, n_samples - s) for s in range(0, n_samples, group)] if group < n_samples else [n_samples]
    if n_keys == n_rows:
        return len(sizes)
    queries = sum(math.ceil((n_rows - n_keys) / max(1, chunk_rows // g)) for g in sizes)
    return queries + {"each": len(sizes), "once": 1, "none": 0}[key_pass]


def impute(
    pretrained: Pretrained, x: np.ndarray, known: np.ndarray, is_cat: np.ndarray, n_classes: np.ndarray, *,
    n_samples: int = 1, method: str = "point", n_steps: int = 1, jump_length: int = 1, jump_n_sample: int = 1,
    max_context_rows: int | None = None, context_cells: int | None = None, chunk_rows: int | None = None, seed: int = 0,
    key_rows: np.ndarray | None = None, progress=False, return_logits: bool = False,
    variance_mix: float | None = None, share_first_call: bool | None = None, draw_context_rows: int | None = None,
    center_draws: bool | None = None, calibrate_spread: bool | None = None, ensemble: tuple[str, ...] | None = None,
    ensemble_draws: bool | None = None, local_context_rows: int | None = None, local_query_rows: int | None = None,
    ensemble_folds: int | None = None, blend_inputs: bool | None = None, snap_draws: bool | None = None,
    couple_draws: bool | None = None, parameter_draws: bool | None = None, target: int | None = None,
    target_weight: float = 0.0, extrapolate: bool = False, input_blend: InputBlend | None = None,
):
    """Imputations (n_samples, N, F) float32 of an encoded table (``EncodedTable`` fields, numpy): the one
    inference engine behind the estimators, the CLI and the benchmarks.

    ``method="point"`` (the default; also ``"ddim"`` with one step and one sample): the one-call point estimate
    (then also the logits (N, F, C) if ``return_logits``); a sampler (``"conditional"``, ``"repaint"``,
    ``"ddim"``): ``impute_standardized``. ``max_context_rows``, ``context_cells``, ``chunk_rows``,
    ``variance_mix``, ``share_first_call``, ``draw_context_rows``, ``center_draws``, ``calibrate_spread``,
    ``ensemble``, ``ensemble_draws``, ``local_context_rows``, ``local_query_rows``, ``ensemble_folds``,
    ``blend_inputs``, ``snap_draws``, ``couple_draws`` and ``parameter_draws`` left None take the checkpoint's tuned values (``pretrained.sampler``). The point estimate is
    averaged over the ``ensemble``'s views of the table (``ensemble_point``; with ``ensemble_folds``, weighted per
    column by cross-validation on the key rows: ``view_weights``), with ``blend_inputs`` blended per column with the
    network's closed-form inputs (``input_weights``, ``blend_with_inputs``; categorical cells' class probabilities
    with the trees', ``CATEGORICAL_TREES``), then, with ``local_context_rows``, blended
    per column with the local contexts' (``local_point``, ``local_weights``), and the predictors' ``target`` column
    (rows imputed against the fitted ``key_rows``) with extremely randomized trees' estimate of it fitted on those
    (``target_trees``): (1 - ``target_weight``) network + ``target_weight`` trees, values or class probabilities
    (the estimators choose the weight by cross-fitting on the training rows). With ``extrapolate``, a numeric
    ``target``'s rows whose known numeric cells lie beyond the key rows' range are all this at their edge
    (``key_range_edges``) plus what the closed-form linear fit gains from there (``linear_extrapolation``): the
    network, the trees and the local contexts all predict a row beyond their context as its nearest edge
    (``DiffusionRegressor``'s ``extrapolate``). Several draws of numeric cells are
    then, in this order, centred on the point estimate (``center_draws``; with ``share_first_call`` it is the
    draws' shared first call, made once), shifted each by a bootstrap of the table's fitted Gaussian
    (``parameter_draws``, ``parameter_shifts``), rescaled per column about their mean (``calibrate_spread``,
    ``spread_scales``, run on the key rows alone), coupled within each row (``couple_draws``, ``coupled``), and
    with ``snap_draws`` a discrete numeric column's moved to its nearest observed value (``snap_to_support``); not
    RePaint's, which stay as drawn (faithful).
    ``input_blend``: the blend's weights (``input_weights``' result) where the caller has them for this table: the
    spread calibration's call on the table's key rows takes its table's instead of choosing them again (one network
    call per view and a fit of the trees fewer).
    Key rows: ``key_rows``, or a seeded choice of at most ``max_context_rows``, more for a narrow table
    (``context_cells``, ``sampling.context_rows``). Rows that are complete and not key rows influence no other row
    (query rows attend to key rows only), so they are left out of the call. Numeric outputs are clamped once, here,
    to the network's input range; observed cells are returned bit for bit. ``progress``: a tqdm bar ticked
    by a forward hook on the network (one tick per forward pass), the spread calibration's and the centre's
    passes included (their nested calls get the bar itself, and add their passes to its total).
    """
    if target is not None and (key_rows is None or not 0 <= target < x.shape[1]):
        raise ValueError(f"target must be a column index (0 to {x.shape[1] - 1}) of a table imputed against fitted "
                         f"rows (key_rows), got target={target!r} with key_rows {'None' if key_rows is None else 'given'}")
    if target is not None and extrapolate and not is_cat[target]:
        edges = key_range_edges(x, known, is_cat, key_rows)
        if not np.array_equal(edges, x, equal_nan=True):
            # The network, the trees and the local contexts predict a row beyond the fitted rows as at its nearest
            # edge (a linear target flattens at the largest value they were shown): they impute the edges, and the
            # closed-form linear fit carries the target from there, as ridge regression would.
            args = {name: value for name, value in locals().items() if name in IMPUTE_OPTIONS}
            out = impute(pretrained, edges, known, is_cat, n_classes, **args)
            beyond = linear_extrapolation(pretrained, x, edges, known, is_cat, n_classes, key_rows, target)
            values = out[0] if return_logits else out
            values[:, ~known[:, target], target] += beyond.numpy()[~known[:, target]].astype(values.dtype)
            values[:, known] = x[known]  # observed cells as given, not at their edges
            return out
    model, diffusion = pretrained.model, pretrained.diffusion
    # The settings left None take the checkpoint's tuned values; these are what the nested calls (the centre,
    # the spread calibration) run with too.
    tuned = replace(pretrained.sampler, **{name: v for name, v in locals().items() if name in SETTINGS and v is not None})
    settings = {name: getattr(tuned, name) for name in SETTINGS}
    max_context_rows, chunk_rows, variance_mix = tuned.max_context_rows, tuned.chunk_rows, tuned.variance_mix
    draw_context_rows, ensemble = tuned.draw_context_rows, tuned.ensemble
    local_context_rows, local_query_rows = tuned.local_context_rows, tuned.local_query_rows
    check_ensemble_folds(tuned.ensemble_folds)
    # RePaint stays faithful: its draws come from the unconditional denoiser alone, as drawn.
    share = tuned.share_first_call and method != "repaint"
    snap_draws = tuned.snap_draws and method != "repaint"
    couple_draws = tuned.couple_draws and method != "repaint"
    parameter_draws = tuned.parameter_draws and method != "repaint"
    center_draws = tuned.center_draws and method != "repaint"
    calibrate_spread = tuned.calibrate_spread and method != "repaint"
    ensemble_draws = tuned.ensemble_draws and method != "repaint"
    dev = next(model.parameters()).device
    N = x.shape[0]
    known_t = torch.as_tensor(known)
    cpu_gen = torch.Generator().manual_seed(seed)
    table_rows = context_rows(max_context_rows, tuned.context_cells, x.shape[1])
    keys = choose_key_rows(known_t, table_rows, cpu_gen) if key_rows is None else torch.as_tensor(key_rows)
    rows = torch.as_tensor(~known).any(1)
    rows[keys] = True
    rows = rows.nonzero().squeeze(1)  # (R,) sorted: key rows + rows with something to impute
    pos = torch.full((N,), -1, dtype=torch.long)
    pos[rows] = torch.arange(len(rows))
    keys_sub = pos[keys]
    xs, ks = torch.as_tensor(x)[rows].to(dev), known_t[rows].to(dev)
    cat, ncl = torch.as_tensor(is_cat).to(dev), torch.as_tensor(n_classes).to(dev)
    if method not in ENGINE_METHODS:
        raise ValueError(f"method must be one of {ENGINE_METHODS}, got {method!r}")
    if method == "point" and n_samples != 1:
        raise ValueError("method 'point' is one imputation, the posterior mean; draws need a sampler "
                         "('conditional', 'repaint' or 'ddim')")
    point = method == "point" or (method == "ddim" and n_steps == 1 and n_samples == 1)
    draw_keys = keys_sub
    if share and not point and draw_context_rows < len(keys_sub):
        draw_keys = keys_sub[choose_key_rows(ks[keys_sub.to(dev)].cpu(), draw_context_rows, cpu_gen)]

    def passes(n_samples: int, keys: torch.Tensor, calls: int) -> int:
        """Forward passes of ``calls`` calls of one TableDenoiser."""
        count = partial(forward_passes, n_samples, len(rows), len(keys), chunk_rows)
        if method == "repaint" or not bool(ks[keys.to(dev)].all()):
            return calls * count("each")
        return count("once") + (calls - 1) * count("none") if calls else 0

    if point:
        total = passes(1, keys_sub, 1) * len(ensemble)
    else:
        # Several draws of a conditional sampler are split among the ensemble's views (drawn in each view's
        # units and mapped back, interleaved), so that their shape follows a skewed column's.
        draw_views = ensemble if share and ensemble_draws and n_samples > 1 else ("identity",)
        split = [len(range(i, n_samples, len(draw_views))) for i in range(len(draw_views))]
        chain_len = diffusion.respaced(n_steps).n_chain
        steps = count_calls(repaint_schedule(chain_len, jump_length, jump_n_sample))[0]
        # The last step (original t = 0) calls the network only to reveal categorical cells.
        steps -= chain_len > 1 and not bool((cat[None, :] & ~ks).any())
        first_calls = len(set(draw_views) | set(ensemble if center_draws and n_samples > 1 else ()) | {"identity"})
        total = passes(n_samples, keys_sub, steps) if not share else (
            first_calls * passes(1, keys_sub, 1) + sum(passes(n, draw_keys, steps - 1) for n in split))

    # Imputations stay within +-CLIP (the network's input range) or the column's observed values' reach beyond it.
    reach = torch.as_tensor(np.maximum(CLIP, np.abs(np.where(known, x, 0.0)).max(0)), dtype=torch.float32)

    def whole(sub: torch.Tensor) -> torch.Tensor:
        """(S, N, F) table from imputations of its rows ``rows``. No NaN or inf leaves: numeric cells are
        clamped to the column's ``reach``."""
        sub = torch.nan_to_num(sub.float(), nan=0.0).cpu().clamp(-reach, reach)
        full = torch.as_tensor(x)[None].repeat(len(sub), 1, 1)
        full[:, rows] = torch.where(torch.as_tensor(known)[rows], full[:, rows], sub)
        return full

    # ``view_weights`` and ``input_weights``, computed once, for the point estimate or the draws' centre.
    weights = {} if input_blend is None else {"inputs": input_blend}
    fits = {}

    def gaussian_fit() -> tuple[dict, torch.Tensor]:
        """``expanded_precision`` of the key rows, fitted once for the draws' levels and their coupling."""
        if "draws" not in fits:
            fits["draws"] = expanded_precision(x, known, is_cat, n_classes, keys.numpy(), model.cfg.gaussian_em_iters)
        return fits["draws"]

    def view_weights_of() -> torch.Tensor | None:
        if tuned.ensemble_folds and len(ensemble) == 2 and "views" not in weights:
            kx = keys_sub.to(dev)
            weights["views"] = view_weights(model, diffusion, xs[kx], ks[kx], cat, ncl, (~ks).any(0), chunk_rows,
                                            ensemble, tuned.ensemble_folds, seed, bar)
        return weights.get("views")

    blend = bool(tuned.blend_inputs and model.closed_form_inputs)

    def input_weights_of() -> InputBlend | None:
        if blend and "inputs" not in weights:
            if key_rows is None:
                # A table imputed as a whole: the weights from the rows the final call's trees learn from (every
                # row up to ``tree_regression.MAX_ROWS``; ``WEIGHTS_ON_KEYS``), the key rows as context, so that
                # each input is judged as it is used. The held cells' odds are fitted on every row (the key rows
                # may be the complete ones).
                sub = keys_sub.cpu() if WEIGHTS_ON_KEYS else fit_rows(len(rows), keys_sub, seed)
                columns = (~ks).any(0)
                odds = missingness_odds(x, known, is_cat, (~known).any(0), seed)[rows[sub].numpy()]
                at_random = missing_by_others(x, known, is_cat, (~known).any(0), seed)
            else:
                # Rows imputed against fitted ones: the weights from those alone, every column held, so that
                # a row's imputation does not depend on the other rows imputed with it.
                sub = keys_sub.cpu()
                columns = torch.ones_like(cat)
                fitted = keys.numpy()
                odds = missingness_odds(x[fitted], known[fitted], is_cat, (~known[fitted]).any(0), seed)
                at_random = missing_by_others(x[fitted], known[fitted], is_cat, (~known[fitted]).any(0), seed)
            context = None if len(sub) == len(keys_sub) else torch.searchsorted(sub, keys_sub.cpu())  # both sorted
            sx = sub.to(dev)
            weights["inputs"] = input_weights(model, diffusion, xs[sx], ks[sx], cat, ncl, columns, chunk_rows,
                                              ensemble, view_weights_of(), seed, bar, odds,
                                              key_rows=context, at_random=at_random)
        return weights.get("inputs")

    def point_estimate_of(outputs: dict | None = None, table_views: dict | None = None):
        """The point estimate (R, F) and logits (R, F, C) of the rows ``rows``: ``network_point_of``'s, the
        ``target`` column's unknown cells blended with the trees' estimate (``target_trees``) by ``target_weight``."""
        x0, logits = network_point_of(outputs, table_views)
        if target is None or not target_weight:
            return x0, logits
        trees = target_trees(pretrained, x, known, is_cat, n_classes, keys.numpy(), target, logits.shape[-1], seed)
        trees, w, unknown = trees[rows].to(dev), float(target_weight), ~ks[:, target]
        x0, logits = x0.clone(), logits.clone()
        if bool(is_cat[target]):
            probs = (1 - w) * torch.softmax(logits[:, target].double(), -1) + w * trees
            x0[:, target] = torch.where(unknown, probs.argmax(-1).to(x0.dtype), x0[:, target])
            logits[:, target] = torch.where(unknown[:, None], as_logits(probs).to(logits.dtype), logits[:, target])
        else:
            x0[:, target] = torch.where(unknown, ((1 - w) * x0[:, target].double() + w * trees).to(x0.dtype),
                                        x0[:, target])
        return x0, logits

    def network_point_of(outputs: dict | None = None, table_views: dict | None = None):
        """The network's point estimate (R, F) and logits (R, F, C) of the rows ``rows``: the ensemble's, blended
        per column with the network's closed-form inputs where ``blend_inputs`` is set (``input_weights``,
        ``blend_with_inputs``), then with the local contexts' (``local_point``, ``local_weights``) where
        ``local_context_rows`` is set."""
        v_weights, i_weights = view_weights_of(), input_weights_of()
        table_views = views(xs, ks, cat, keys_sub, ensemble) if table_views is None else table_views
        # Rows imputed against fitted ones (key_rows given): the blend's level from those alone, so that a row's
        # imputation depends on them and on itself only, as the network's.
        level_rows = None
        if key_rows is not None:
            level_rows = torch.zeros(len(rows), dtype=torch.bool, device=dev)
            level_rows[keys_sub.to(dev)] = True
        # A table imputed as a whole: the trees may learn from every row of the call, as MissForest's forests do
        # (at most ``tree_regression.MAX_ROWS``). Rows imputed against fitted ones: from those alone.
        tree_rows = None if key_rows is not None else fit_rows(len(rows), keys_sub, seed)
        x0, logits = blended_point(model, diffusion, xs, ks, cat, ncl, keys_sub, chunk_rows, ensemble, table_views,
                                   {} if outputs is None else outputs, v_weights, i_weights, level_rows, tree_rows)
        if not local_context_rows:
            return x0, logits
        # A table imputed as a whole: every row may be context. Rows imputed against fitted ones (key_rows
        # given): only those, so that each row's imputation depends on them and on itself alone.
        whole_table = key_rows is None
        full_x, full_k = torch.as_tensor(x).to(dev), known_t.to(dev)
        full_x0 = torch.where(full_k, full_x, 0.0)
        full_x0[rows] = x0
        candidates = torch.arange(N, device=dev) if whole_table else keys.to(dev)
        settings = (chunk_rows, LOCAL_MEMBERS, local_context_rows, local_query_rows, seed)
        local = local_point(model, diffusion, full_x, full_k, cat, ncl, full_x0, candidates, whole_table, *settings,
                            bar)
        if local is None:
            return x0, logits
        kx = keys.to(dev)
        w = local_weights(model, diffusion, full_x[kx], full_k[kx], cat, ncl, (~known).any(0), ensemble, *settings,
                          bar, v_weights, i_weights)
        probs = (1 - w[:, None]) * torch.softmax(logits.double(), -1) + w[:, None] * local[1][rows]
        mixed = torch.where(cat[None, :].expand_as(ks), probs.argmax(-1).to(x0.dtype),
                            ((1 - w) * x0 + w * local[0][rows]).to(x0.dtype))
        return torch.where(ks, xs, mixed), as_logits(probs).to(x0.dtype)

    bar = hook = centre_sub = centre_logits = None
    if progress and not hasattr(progress, "update"):
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="imputing" if n_samples == 1 else f"{n_samples} imputations", unit="pass",
                   leave=False)

        def tick(*_) -> None:  # None: a forward hook's non-None return would replace the output (tqdm's update
            bar.update(1)  # returns True when it redraws)

        hook = model.register_forward_hook(tick)
    elif hasattr(progress, "update"):  # a caller's bar (the calibration's draws, the centre):
        bar = progress  # this call's passes join its total; the caller's hook ticks it
        bar.total += total
        bar.refresh()
    try:
        if point:
            x0, logits = point_estimate_of()
            out_sub = x0[None]
        else:
            # The first call (t = T, x_T at its mean) of each view is made once: it is the view's point estimate,
            # which the draws are centred on, and the shared first call of the draws drawn in that view.
            # Each view (and its transform's fit) is made once, for the centre and the draws alike.
            table_views = views(xs, ks, cat, keys_sub, tuple(dict.fromkeys(ensemble + draw_views)))
            # With the blend, the centre's first calls also return the closed-form inputs it blends.
            with_inputs = blend and center_draws and n_samples > 1
            outputs = {"identity": first_call(model, diffusion, xs, ks, cat, ncl, keys_sub, chunk_rows,
                                              with_inputs)} if share else {}
            if share and center_draws and n_samples > 1:
                centre_sub, centre_logits = point_estimate_of(outputs, table_views)
            gen = torch.Generator(device=dev).manual_seed(seed)
            out_sub = torch.empty(n_samples, *xs.shape, dtype=xs.dtype, device=dev)
            for i, member in enumerate(draw_views):
                transform, x_m = table_views[member]
                if share and member not in outputs:
                    outputs[member] = first_call(model, diffusion, x_m, ks, cat, ncl, keys_sub, chunk_rows)
                drawn = impute_standardized(
                    model, diffusion, x_m, ks, cat, ncl, n_samples=split[i], method=method, n_steps=n_steps,
                    jump_length=jump_length, jump_n_sample=jump_n_sample, max_context_rows=max_context_rows,
                    chunk_rows=chunk_rows, generator=gen, key_rows=keys_sub, variance_mix=variance_mix,
                    share_first_call=share, draw_key_rows=draw_keys,
                    first_output=outputs[member][:2] if member in outputs else None,
                )
                out_sub[i :: len(draw_views)] = drawn if transform is None else torch.where(ks, xs, transform.inverse(drawn))
        out = whole(out_sub)
        if (center_draws or calibrate_spread or couple_draws) and not point and n_samples > 1:
            fixed = torch.as_tensor(known) | torch.as_tensor(is_cat)[None, :]  # cells these steps leave alone
            mean = out.mean(0, keepdim=True)
            if center_draws:
                centre = whole(centre_sub[None]) if centre_sub is not None else torch.as_tensor(impute(
                    pretrained, x, known, is_cat, n_classes, seed=seed, key_rows=key_rows, progress=bar, **settings))
                out, mean = torch.where(fixed, out, out - mean + centre), centre
            if parameter_draws:
                shifts = parameter_shifts(x, known, is_cat, n_classes, keys.numpy(), model.cfg.gaussian_em_iters,
                                          n_samples, seed, mean[0].numpy())
                out = torch.where(fixed, out, out + shifts.to(out.dtype))
            # The spread's calibration cells, drawn once (a logistic fit per column) for the spread and the coupling.
            cells = calibration_cells(x, known, is_cat, keys.numpy(), seed) if calibrate_spread else None
            if calibrate_spread:
                scale = torch.as_tensor(spread_scales(
                    pretrained, x, known, is_cat, n_classes, seed, keys.numpy(), cells, progress=bar, method=method,
                    n_steps=n_steps, jump_length=jump_length, jump_n_sample=jump_n_sample,
                    input_blend=input_weights_of(), **settings))
                out = torch.where(fixed, out, mean + scale * (out - mean))
                categorical = torch.as_tensor(~known & is_cat[None, :])
                if centre_logits is not None and bool(categorical.any()):
                    temperature = draw_temperature(pretrained, x, known, is_cat, n_classes, seed, keys.numpy(),
                                                   progress=bar, **settings)
                    logits = torch.zeros(N, *centre_logits.shape[1:], dtype=torch.float64)
                    logits[rows] = centre_logits.double().cpu()
                    levels = coupled_levels(logits / temperature, known, is_cat, n_classes, gaussian_fit(),
                                            n_samples, seed)  # (S, N, F)
                    out = torch.where(categorical, levels.to(out.dtype), out)
            if couple_draws:
                out = torch.where(fixed, out, coupled(out, known, is_cat, gaussian_fit(), cells))
            out = torch.where(fixed, out, out.clamp(-reach, reach))
        if snap_draws and not point:
            out = snap_to_support(out, x, known, is_cat)
    finally:
        if hook is not None:
            hook.remove()
            bar.close()
    if return_logits:
        if not point:
            raise ValueError("logits come only with the one-call point estimate")
        full = torch.zeros(N, *logits.shape[1:])
        full[rows] = logits.float().cpu()
        return out.numpy(), full.numpy()
    return out.numpy()


IMPUTE_OPTIONS = tuple(name for name, p in inspect.signature(impute).parameters.items() if p.kind is p.KEYWORD_ONLY)


def coupled(draws: torch.Tensor, known: np.ndarray, is_cat: np.ndarray, fit: tuple[dict, torch.Tensor],
            reference: tuple[np.ndarray, np.ndarray] | None = None, chunk_cells: int = 2**22) -> torch.Tensor:
    """Draws (S, N, F) whose numeric deviations from their mean over the S draws follow, within each row, the
    conditional covariance of the row's unknown cells given its known ones, under the Gaussian the network's
    closed-form input fits to the key rows (``fit``: ``expanded_precision``'s, the table with its categorical
    columns one-hot, as ``gaussian_feature.cell_estimates`` fits it):

    - categories: a row's unknown categorical cells are drawn first (each draw holds its levels); each numeric
      deviation gains the Gaussian's regression of the row's unknown numeric cells on those levels' indicators
      (given the known cells), applied to the drawn indicators minus their mean over the draws, so a draw that
      picks a level with high values of a column also has high values there (a regression coefficient of a
      numeric column on a category, fitted on the completed tables, is not shrunk toward 0);
    - correlation: the rest of each cell's deviations, divided by their spread (sd over the draws), are mixed by
      the Cholesky factor of the row's unknown numeric cells' conditional correlation given the known cells and
      the drawn levels, then scaled back, to what the categories leave of the cell's spread;
    - spread by pattern: a cell's deviations are then scaled by its conditional sd given the known cells over the
      root mean square of those of its column's unknown cells, so a row whose other cells are known gets narrower
      draws than one missing most of them, and the column's mean spread is kept. ``reference`` (key rows (K,),
      hidden (K, F) bool: ``calibration_cells``): the cells the spread was calibrated on, whose root mean square
      is taken instead: the calibrated spread is that of cells missing as those are (one more cell in a row
      whose own cells are missing as they are), and a column's unknown cells missing more of their row (a
      category and a number skipped together) are drawn wider.

    Independent draws of one spread per column gain the Gaussian's dependence and its pattern-dependent widths.
    Other cells unchanged; the draws' mean over S is kept. With P the inverse of the fitted covariance, the
    conditional covariance of a row's unknown slots V given the rest is the inverse of P's V block, and the
    regression of the numeric slots U on the level slots C given the known ones is -(P_UU)^-1 P_UC: one inverse
    of the table's covariance serves every row's missingness pattern."""
    unknown = torch.as_tensor(~known & ~is_cat[None, :])
    rows = unknown.any(1).nonzero().squeeze(1)
    if len(rows) == 0:
        return draws
    layout, precision = fit
    src, level = layout["src"][0], layout["level"][0]  # (E,)
    slot = src[level == -1]  # (F_numeric,) the numeric columns, one slot each, in column order
    num_slot = torch.full((len(is_cat),), -1, dtype=torch.long)
    num_slot[slot] = (level == -1).nonzero().squeeze(1)
    numeric_slot = level == -1
    eye = torch.eye(len(precision), dtype=precision.dtype)
    mean = draws.mean(0, keepdim=True)
    dev = (draws - mean).double()
    spread = dev.std(0, keepdim=True)
    out = dev.clone()
    cond_sd = torch.zeros(unknown.shape, dtype=torch.float64)  # (N, F), 0 at other cells
    chunk = max(1, chunk_cells // len(precision) ** 2)  # rows per batch of (E, E) factors, ~32 MB of float64
    for start in range(0, len(rows), chunk):
        r = rows[start : start + chunk]
        u, c = unknown_slots(torch.as_tensor(known)[r], is_cat, layout)
        given_levels = inv_block(precision, u, eye)  # Cov(U | known cells, levels), identity elsewhere
        joint = inv_block(precision, u | c, eye) if bool(c.any()) else given_levels  # Cov(U, C | known cells)
        sd_all = joint.diagonal(dim1=1, dim2=2).sqrt()  # sd of U given the known cells
        regression = -given_levels @ torch.where(u[:, :, None] & c[:, None, :], precision, 0.0)  # (n, E, E): U <- C
        codes = draws[:, r][:, :, src]  # (S, n, E): each slot's column's drawn value (a level's code at C)
        hot = torch.where(c, (codes == level).double(), 0.0)
        from_levels = torch.einsum("nij,snj->sni", regression, hot - hot.mean(0, keepdim=True))  # (S, n, E)
        sd_left = given_levels.diagonal(dim1=1, dim2=2).sqrt()
        factor, failed = torch.linalg.cholesky_ex(given_levels / sd_left[:, :, None] / sd_left[:, None, :])
        factor = torch.where(failed[:, None, None] > 0, eye, factor)  # a factor round-off broke: left uncoupled
        # Numeric cells in slot order: (S, n, E) with the numeric slots filled.
        at = torch.where(numeric_slot, dev[:, r][:, :, src], 0.0)  # (S, n, E): numeric cells at their slots
        s = torch.where(numeric_slot, spread[:, r][:, :, src], 0.0)
        z = torch.where(u & (s > 0), at / s.clamp(min=1e-12), 0.0)
        levels_part = from_levels * s / sd_all  # the Gaussian's deviations in the draws' calibrated units
        part_var = levels_part.var(0, keepdim=True)
        shrink = torch.where(part_var > s**2, s / part_var.sqrt().clamp(min=1e-300), 1.0)  # never wider than s
        levels_part = levels_part * shrink
        rest = (1 - (part_var * shrink**2) / (s**2).clamp(min=1e-300)).clamp(min=0).sqrt()
        mixed = torch.einsum("nij,snj->sni", factor, z) * s * rest + levels_part
        mixed = mixed[:, :, num_slot.clamp(min=0)]  # back to (S, n, F)
        numeric = unknown[r]
        out[:, r] = torch.where(numeric, mixed, dev[:, r])
        cond_sd[r] = torch.where(numeric, sd_all[:, num_slot.clamp(min=0)], 0.0)
    rms = (cond_sd.square().sum(0) / unknown.sum(0).clamp(min=1)).sqrt()  # (F,)
    if reference is not None:
        ref_rows, hold = reference
        hidden = torch.as_tensor(hold & ~is_cat[None, :])
        measured = hidden.any(0)
        ref_sd = torch.zeros(hidden.shape, dtype=torch.float64)
        for start in range(0, len(ref_rows), chunk):
            part = slice(start, start + chunk)
            u, c = unknown_slots(torch.as_tensor(known[ref_rows[part]] & ~hold[part]), is_cat, layout)
            sd = inv_block(precision, u | c, eye).diagonal(dim1=1, dim2=2).sqrt()
            ref_sd[part] = torch.where(hidden[part], sd[:, num_slot.clamp(min=0)], 0.0)
        ref_rms = (ref_sd.square().sum(0) / hidden.sum(0).clamp(min=1)).sqrt()
        rms = torch.where(measured & (ref_rms > 0), ref_rms, rms)
    out = torch.where(unknown & (rms > 0), out * cond_sd / rms.clamp(min=1e-300), out)
    return mean + out.to(draws.dtype)


def expanded_precision(x: np.ndarray, known: np.ndarray, is_cat: np.ndarray, n_classes: np.ndarray,
                       key_rows: np.ndarray, em_iters: int) -> tuple[dict, torch.Tensor]:
    """(``one_hot_layout`` of the table (batch of 1), the inverse (E, E) float64 of the covariance of the Gaussian
    fitted to the key rows with categorical columns one-hot, as the network's closed-form input fits it at inference:
    EM run to convergence for a network trained on ``em_iters`` iterations)."""
    layout = one_hot_layout(torch.as_tensor(is_cat)[None], torch.as_tensor(n_classes)[None])
    keys = np.sort(key_rows)
    x_e, known_e = expand_table(torch.as_tensor(x[keys])[None], torch.as_tensor(known[keys])[None], layout)
    _, cov = table_gaussian(x_e, known_e, torch.zeros(layout["src"].shape, dtype=torch.bool), **converged_em(em_iters))
    return layout, torch.linalg.inv(cov[0])


def parameter_shifts(x: np.ndarray, known: np.ndarray, is_cat: np.ndarray, n_classes: np.ndarray,
                     key_rows: np.ndarray, em_iters: int, n_samples: int, seed: int, centre: np.ndarray,
                     chunk_cells: int = 2**22) -> torch.Tensor:
    """(S, N, F) float64 shifts of the unknown numeric cells, one table of them per draw, centred over the S draws
    (0 at known and categorical cells): how much a cell's Gaussian estimate moves when the Gaussian is fitted to a
    bootstrap resample of the key rows instead of the key rows themselves. Added to draws centred on one point
    estimate, they carry the uncertainty of the fitted relations into the draws, coherently across the table's
    cells, as a proper multiple imputation must (MICE draws its regressions' coefficients; Amelia fits EM to
    bootstrap resamples): without it a coefficient fitted on the completed tables varies less between draws than
    between tables.

    A cell's estimate under a fit (mean m, precision P, the table with categorical columns one-hot) is its
    regression on the row's other slots, m_j - sum_k P_jk / P_jj (v_k - m_k), with the row's other unknown
    numeric cells at the ``centre`` (N, F) (the point estimate) and its unknown levels at the fit's level shares:
    exact for a row's only unknown cell, and to first order for the others (their own shifts are not carried
    over). One matrix product per draw, ``chunk_cells`` float64 entries at a time. The resamples' fits start EM
    from the key rows' (converged) and run ``BOOTSTRAP_EM_ITERS`` iterations. 20 draws of a 10,000 x 100 table:
    41 s, against 247 s for EM converged from scratch per resample and exact conditional means (a loaded machine)."""
    rows = np.flatnonzero((~known & ~is_cat[None, :]).any(1))
    out = torch.zeros(n_samples, *x.shape, dtype=torch.float64)
    if len(rows) == 0:
        return out
    keys = np.sort(key_rows)
    draws = np.random.default_rng([seed, 9]).integers(0, len(keys), (n_samples, len(keys)))
    picks = np.concatenate([keys[None], keys[draws]])  # (1 + S, K): the key rows, then S resamples
    cat, ncl = torch.as_tensor(is_cat)[None], torch.as_tensor(n_classes)[None]
    layout = one_hot_layout(cat.expand(len(picks), -1), ncl.expand(len(picks), -1))
    x_e, known_e = expand_table(torch.as_tensor(x[picks]).double(), torch.as_tensor(known[picks]), layout)
    no_cat = torch.zeros(layout["src"].shape, dtype=torch.bool)
    fit = table_gaussian(x_e[:1], known_e[:1], no_cat[:1], **converged_em(em_iters))
    resampled = table_gaussian(x_e[1:], known_e[1:], no_cat[1:], em_iters=BOOTSTRAP_EM_ITERS,
                               init=(fit[0][0], fit[1][0])) if em_iters else table_gaussian(x_e[1:], known_e[1:], no_cat[1:])
    mean, cov = torch.cat([fit[0], resampled[0]]), torch.cat([fit[1], resampled[1]])  # (1 + S, E), (1 + S, E, E)
    precision = torch.linalg.inv(cov)
    regression = -precision / precision.diagonal(dim1=-2, dim2=-1)[..., :, None]  # row j: slot j on the others
    regression.diagonal(dim1=-2, dim2=-1).zero_()
    one = {name: v[:1] for name, v in layout.items()}
    filled = np.where(known | is_cat[None, :], x, centre)[rows]
    v, seen = expand_table(torch.as_tensor(filled).double()[None], torch.as_tensor(known | ~is_cat[None, :])[rows][None],
                           one)
    v = torch.where(seen, v, mean[:1, None, :])[0]  # (R, E): unknown levels at the key rows' shares
    numeric = (one["level"][0] == -1) & one["valid"][0]
    src = one["src"][0][numeric]  # the numeric slots' columns
    step = max(1, chunk_cells // (len(picks) * x_e.shape[-1]))
    for start in range(0, len(rows), step):
        r = slice(start, start + step)
        pred = mean[:, None, :] + (v[r][None] - mean[:, None, :]) @ regression.transpose(-1, -2)  # (1 + S, n, E)
        shift = (pred[1:] - pred[:1])[..., numeric]
        out[:, rows[r][:, None], src[None, :]] = shift - shift.mean(0, keepdim=True)
    return torch.where(torch.as_tensor(known | is_cat[None, :]), 0.0, out)


def coupled_levels(logits: torch.Tensor, known: np.ndarray, is_cat: np.ndarray, n_classes: np.ndarray,
                   fit: tuple[dict, torch.Tensor], n_samples: int, seed: int,
                   chunk_cells: int = 2**22) -> torch.Tensor:
    """(S, N, F) level codes of the unknown categorical cells (0 elsewhere): ``draw_levels`` of ``logits`` (N, F, C),
    except that a row's unknown categorical cells are drawn one after another (in column order), each from its
    logits plus the shift the row's earlier drawn levels give its level scores under the Gaussian ``fit``
    (``expanded_precision``'s): with m and C the mean and covariance of the column's indicators given the row's known
    cells, a level c's score log N(e_c; m, C) moves by (C^-1 dm)_c when m moves by dm = B (h - mean h), B the
    regression of the column's indicators on the earlier columns' (given the known cells) and h their drawn
    indicators (centred over the draws, so the column's overall frequencies stay). Drawn independently, two
    categories hidden in one row lost their association in the completed tables (two flags that agree in 85% of
    the rows agreed in 53% of the rows where both were drawn)."""
    levels = draw_levels(logits, n_classes, n_samples, seed)
    categorical = torch.as_tensor(~known & is_cat[None, :])
    rows = (categorical.sum(1) >= 2).nonzero().squeeze(1)
    if len(rows) == 0:
        return levels
    layout, precision = fit
    src, level = layout["src"][0], layout["level"][0]
    eye = torch.eye(len(precision), dtype=precision.dtype)
    ls = (level >= 0).nonzero().squeeze(1)  # the level slots
    eye_c = torch.eye(len(ls), dtype=precision.dtype)
    generator = torch.Generator().manual_seed(seed + 8)
    n_levels = logits.shape[-1]
    chunk = max(1, chunk_cells // len(precision) ** 2)
    for start in range(0, len(rows), chunk):
        r = rows[start : start + chunk]
        u, c = unknown_slots(torch.as_tensor(known)[r], is_cat, layout)
        # The covariance of the unknown slots given the known cells, kept on the level slots only (ls, Ec of the E).
        given_known = inv_block(precision, u | c, eye)[:, ls][:, :, ls]  # (n, Ec, Ec)
        order = categorical[r].long().cumsum(1) * categorical[r]  # (n, F): 1, 2, ... at a row's unknown categories
        for step in range(2, int(order.max()) + 1):
            at = order == step  # (n, F) the column drawn at this step (at most one per row)
            busy = at.any(1)
            target = (at[:, src] & c)[:, ls]  # (n, Ec) its level slots
            before = (((order > 0) & (order < step))[:, src] & c)[:, ls]  # the earlier columns' level slots
            cov_tb = torch.where(target[:, :, None] & before[:, None, :], given_known, 0.0)
            cov_bb = torch.where(before[:, :, None] & before[:, None, :], given_known, eye_c)
            cov_tt = torch.where(target[:, :, None] & target[:, None, :], given_known, eye_c)
            codes = levels[:, r][:, :, src[ls]]  # (S, n, Ec)
            hot = torch.where(before, (codes == level[ls]).double(), 0.0)
            centred = hot - hot.mean(0, keepdim=True)
            shift = torch.linalg.solve(cov_bb, centred.permute(1, 2, 0))  # (n, Ec, S)
            shift = torch.linalg.solve(cov_tt, cov_tb @ shift)  # C^-1 dm at the target slots
            shift = torch.where(target[:, :, None], shift, 0.0)
            # Scores by level: the target slots' shifts placed at their level index; (S, n, C).
            delta = torch.zeros(len(r), n_levels, n_samples, dtype=torch.float64)
            delta.scatter_add_(1, level[ls][None, :, None].expand(len(r), -1, n_samples), shift)
            column = at.long().argmax(1)  # (n,) the drawn column (0 for rows done)
            base = logits[r, column].double()  # (n, C)
            valid = torch.arange(n_levels) < torch.as_tensor(n_classes)[column][:, None].clamp(min=1)
            scores = (base[:, None, :] + delta.permute(0, 2, 1)).masked_fill(~valid[:, None, :], -torch.inf)
            drawn = torch.multinomial(torch.softmax(scores, -1).reshape(-1, n_levels), 1,
                                      generator=generator).view(len(r), n_samples)  # (n, S)
            rows_now = busy.nonzero().squeeze(1)
            levels[:, r[rows_now], column[rows_now]] = drawn[rows_now].T.to(levels.dtype)
    return levels


def unknown_slots(known: torch.Tensor, is_cat: np.ndarray, layout: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows' known cells (n, F) bool -> their unknown numeric slots and the level slots of their unknown categorical
    cells in the expanded table of ``layout`` (batch of 1): two (n, E) bool."""
    src, level = layout["src"][0], layout["level"][0]
    unknown = ~known[:, src]
    cat = torch.as_tensor(is_cat)[src]
    return unknown & ~cat & (level == -1), unknown & cat & (level >= 0)


def inv_block(precision: torch.Tensor, block: torch.Tensor, eye: torch.Tensor) -> torch.Tensor:
    """Per row, the inverse of ``precision`` (E, E) restricted to the slots ``block`` (n, E) bool, the identity
    elsewhere: the conditional covariance of those slots given the others."""
    return torch.linalg.inv(torch.where(block[:, :, None] & block[:, None, :], precision, eye))


def snap_to_support(draws: torch.Tensor, x: np.ndarray, known: np.ndarray, is_cat: np.ndarray) -> torch.Tensor:
    """Draws (S, N, F) with each unknown cell of a discrete numeric column moved onto the values observed in that
    column: the column's observed values take at most ``SNAP_MAX_VALUES`` distinct values, each seen
    ``SNAP_MIN_REPEATS`` times or more on average. A draw is then a value the column can hold (a count of
    cylinders, a year, a 0/1 flag), as predictive mean matching's are (R's mice). Other cells unchanged.

    With several draws, each cell's draws (mean m, sd s over the S draws) are read as a Gaussian posterior
    N(m, s^2): the column's marginal, approximated by the Gaussian N(mu, sd^2) of its observed values, times a
    Gaussian likelihood of precision 1/s^2 - 1/sd^2 (clipped at 0). The cell's discrete distribution is the
    column's observed frequencies times that likelihood, tilted so that its mean is m (``tilted_frequencies``),
    and each draw takes the value at its own Gaussian quantile Phi((draw - m) / s) of it: draws keep their order
    (the coupling of a row's cells) and their mean. A rare value between two common ones then gets its share of
    the frequencies, not of the number line (5 cylinders between 4 and 6: draws near 5 become 4s and 6s). One
    draw, or draws that agree: the nearest value (ties: the lower). ``benchmarks/results/draws.md``, session 21."""
    out = draws.clone()
    for j in np.flatnonzero(~is_cat & (~known).any(0)):
        observed = x[known[:, j], j]
        support, counts = np.unique(observed, return_counts=True)
        if not 0 < len(support) <= min(SNAP_MAX_VALUES, known[:, j].sum() / SNAP_MIN_REPEATS):
            continue
        values = torch.as_tensor(support, dtype=torch.float64)
        cells = torch.as_tensor(~known[:, j])
        d = draws[:, cells, j].double()  # (S, n) the unknown cells
        above = torch.searchsorted(values, d).clamp(max=len(values) - 1)  # the first value >= the draw, or the last
        lower, upper = values[(above - 1).clamp(min=0)], values[above]  # the values around the draw
        nearest = torch.where(d - lower <= upper - d, lower, upper)  # ties: the lower
        snapped = nearest
        if len(d) > 1 and len(support) > 1:
            mu, sd = float(observed.mean()), float(observed.std())
            v = (values - mu) / sd  # the column's standard units
            m, s = (d.mean(0) - mu) / sd, d.std(0) / sd  # (n,)
            spread = s > 1e-6
            s = torch.where(spread, s, 1.0)
            z = ((d - mu) / sd - m) / s  # (S, n)
            precision = (1 / s**2 - 1).clamp(min=0)  # the likelihood's: the posterior's less the marginal's
            q = tilted_frequencies(torch.as_tensor(counts / counts.sum()), v, m, precision)  # (n, K)
            u = torch.special.ndtr(z).T.contiguous()  # (n, S)
            pick = torch.searchsorted(q.cumsum(-1)[:, :-1].contiguous(), u).T  # the first value whose cdf reaches u
            snapped = torch.where(spread, values[pick], nearest)
        out[:, cells, j] = snapped.to(draws.dtype)
    return out


def tilted_frequencies(p: torch.Tensor, v: torch.Tensor, m: torch.Tensor, precision: torch.Tensor,
                       iterations: int = 60) -> torch.Tensor:
    """Distributions (N, K) over the K values v (sorted) q(v) ∝ p(v) exp(a v - precision v^2 / 2), each with its
    a such that the mean under q is m (N,), kept inside the values' range: the frequencies p (K,) moved as little
    as a Gaussian likelihood of the given precision (N,) allows to reach the mean m. The mean grows with a (its
    derivative is the variance under q), so a is found by Newton's steps kept inside a shrinking bracket (a
    bisection step where Newton's would leave it). A precision above 100 / gap^2 (gap: the smallest between two
    values) is taken as that: q is then already on the values next to m, and the search stays short."""
    gap = v.diff().min()
    m = m.clamp(v[0] + 1e-3 * gap, v[-1] - 1e-3 * gap)[:, None]
    precision = precision.clamp(max=100 / gap**2)[:, None]
    lo, hi = precision * v[0] - 100 / gap, precision * v[-1] + 100 / gap  # (N, 1): means at the ends
    base = p.log() - precision * v**2 / 2
    a = ((precision + 1) * m).clamp(lo, hi)  # exact for p the standard Gaussian
    for _ in range(iterations):
        q = torch.softmax(base + a * v, -1)
        mean = (q * v).sum(-1, keepdim=True)
        if ((mean - m).abs() < 1e-9).all():
            break
        var = (q * (v - mean) ** 2).sum(-1, keepdim=True)
        low = mean < m
        lo, hi = torch.where(low, a, lo), torch.where(low, hi, a)
        step = a + (m - mean) / var.clamp(min=1e-300)
        a = torch.where((step >= lo) & (step <= hi), step, (lo + hi) / 2)
    return torch.softmax(base + a * v, -1)


def calibration_cells(x: np.ndarray, known: np.ndarray, is_cat: np.ndarray, key_rows: np.ndarray, seed: int):
    """The cells ``spread_scales`` hides and draws: (the key rows, sorted (K,); hidden (K, F) bool), a seeded
    ``CALIBRATION_FRAC`` of the observed key-row cells of every numeric column with missing cells, drawn with the
    column's missingness odds (``missingness_odds``, fitted on every row; ``CALIBRATION_MATCHED``) so that they
    sit where its missing cells sit: under MAR those are the rows whose other values are extreme, whose errors
    are larger than a uniform draw of cells shows (Auto, MAR 30%: 90% ranges covering 86%)."""
    rows = np.sort(key_rows)
    columns = ~is_cat & (~known).any(0)
    odds = missingness_odds(x, known, is_cat, columns, seed)[rows] if CALIBRATION_MATCHED else None
    return rows, hold_out(known[rows], columns, np.random.default_rng([seed, 1]), weights=odds)


def draw_temperature(pretrained: Pretrained, x: np.ndarray, known: np.ndarray, is_cat: np.ndarray,
                     n_classes: np.ndarray, seed: int, key_rows: np.ndarray, **settings) -> float:
    """The softmax temperature of the categorical cells' draws: in-context calibration of their spread, as
    ``spread_scales`` calibrates the numeric cells'. In every categorical column with missing cells,
    ``TEMPERATURE_FRAC`` of the observed cells of the key rows (seeded) are hidden as well and their levels'
    logits read off the point estimate of the key rows alone (the centre's settings); the temperature (one
    for the table, ``TEMPERATURE_GRID``) is the one of least log loss on their true levels. 1 where nothing was
    measured. A network whose class probabilities are too flat (too sharp) draws levels too independent of
    (too tied to) the row's other cells, and a coefficient fitted on the completed tables is shrunk (inflated).
    """
    rows = np.sort(key_rows)
    columns = is_cat & (~known).any(0)
    odds = missingness_odds(x, known, is_cat, columns, seed)[rows] if TEMPERATURE_MATCHED else None
    x, known = x[rows], known[rows]
    hold = hold_out(known, columns, np.random.default_rng([seed, 6]), TEMPERATURE_FRAC, weights=odds)
    if not hold.any():
        return 1.0
    # The blend with the closed-form inputs moves numeric cells only: its calls are skipped.
    _, logits = impute(pretrained, x, known & ~hold, is_cat, n_classes, seed=seed + 2, key_rows=np.arange(len(x)),
                       return_logits=True, **{**settings, "blend_inputs": False})
    held = np.nonzero(hold)
    logits = torch.as_tensor(logits[held], dtype=torch.float64)  # (H, C)
    valid = torch.arange(logits.shape[1]) < torch.as_tensor(n_classes[held[1]])[:, None]
    target = torch.as_tensor(x[held], dtype=torch.long)
    loss = [float(-torch.log_softmax((logits / t).masked_fill(~valid, -torch.inf), 1).gather(1, target[:, None]).mean())
            for t in TEMPERATURE_GRID]
    return float(TEMPERATURE_GRID[int(np.argmin(loss))])


def draw_levels(logits: torch.Tensor, n_classes: np.ndarray, n_samples: int, seed: int) -> torch.Tensor:
    """(S, N, F) level codes drawn independently per cell from the softmax of ``logits`` (N, F, C) over each
    column's ``n_classes`` levels (0 at numeric columns), seeded."""
    levels = torch.arange(logits.shape[-1])
    valid = levels < torch.as_tensor(n_classes)[:, None].clamp(min=1)  # (F, C); a numeric column: "level" 0
    probs = torch.softmax(logits.masked_fill(~valid, -torch.inf), -1)
    generator = torch.Generator().manual_seed(seed + 7)
    flat = probs.reshape(-1, probs.shape[-1])
    drawn = torch.multinomial(flat, n_samples, replacement=True, generator=generator)  # (N F, S)
    return drawn.T.reshape(n_samples, *probs.shape[:2])


def spread_scales(pretrained: Pretrained, x: np.ndarray, known: np.ndarray, is_cat: np.ndarray,
                  n_classes: np.ndarray, seed: int, key_rows: np.ndarray, cells: tuple | None = None,
                  **settings) -> np.ndarray:
    """Per-column factors (F,) for the draws' deviations from their mean: in-context calibration of their spread.

    In every numeric column with missing cells, ``CALIBRATION_FRAC`` of the observed cells of the key rows
    (``key_rows``, seeded) are hidden as well and drawn ``CALIBRATION_DRAWS`` times with the same sampler
    ``settings``, on the key rows alone: they attend to each other only, so their draws are those of the
    whole table at the cost of a table of at most ``max_context_rows`` rows. Calibrated draws have
    squared errors of their mean r^2 = s^2 (1 + 1/D) on average (s^2 the draws' variance, D draws; r^2 = s^2
    when they are centred on the point estimate, ``center_draws``), so a column's factor is
    sqrt(sum r^2 / sum s^2 (1 + 1/D)), pulled toward the table's pooled factor by
    ``CALIBRATION_PRIOR_CELLS`` pseudo-cells and kept in ``CALIBRATION_RANGE``. 1 where nothing was measured.
    ``cells``: ``calibration_cells``' output for these arguments, when the caller has it (None: drawn here).
    """
    rows, hold = calibration_cells(x, known, is_cat, key_rows, seed) if cells is None else cells
    x, known = x[rows], known[rows]
    scale = np.ones(x.shape[1])
    if not hold.any():
        return scale
    n_draws = CALIBRATION_DRAWS
    draws = impute(pretrained, x, known & ~hold, is_cat, n_classes, n_samples=n_draws, seed=seed + 1,
                   key_rows=np.arange(len(x)), **{**settings, "calibrate_spread": False, "snap_draws": False,
                                                  "couple_draws": False}
                   ).astype(np.float64)
    err2 = np.where(hold, (draws.mean(0) - x) ** 2, 0.0).sum(0)  # (F,)
    inflation = 1.0 if settings.get("center_draws") else 1 + 1 / n_draws
    var = np.where(hold, draws.var(0, ddof=1) * inflation, 0.0).sum(0)
    cells = hold.sum(0)
    measured = (cells > 0) & (var > 0)
    if not measured.any():
        return scale
    pooled = err2[measured].sum() / var[measured].sum()
    prior = CALIBRATION_PRIOR_CELLS * var[measured] / cells[measured]  # pseudo-cells of the column's mean variance
    ratio = (err2[measured] + prior * pooled) / (var[measured] + prior)
    scale[measured] = np.sqrt(ratio).clip(*CALIBRATION_RANGE)
    return scale
