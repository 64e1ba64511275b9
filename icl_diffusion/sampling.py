"""Samplers: turn any denoiser callable into an imputer. No network code lives here.

The denoiser contract (DESIGN.md)::

    denoiser(x_t: float[B, N, F], t: long[B], known: bool[B, N, F]) -> float[B, N, F]
                                                            or (float[B, N, F], float[B, N, F, C])

The output is in the diffusion's parameterization for numeric cells; when the table has categorical cells
the callable also returns logits over categories. ``t`` is always the ORIGINAL step index. Categorical cells
hold their code as a float, or ``diffusion.MASK`` while absorbed.

Methods:
- ``repaint``: Lugmayr et al. 2022, Algorithm 1. Known cells are re-noised to the current level and blended
  in before every denoising step, the denoiser is called with ``known`` all False (unconditional), and the
  schedule of ``repaint_schedule`` jumps back ``jump_length`` steps ``jump_n_sample - 1`` times.
- ``conditional``: known cells stay clean and are flagged as known; ancestral sampling of the rest, with the
  same optional resampling jumps.
- ``ddim``: conditional and deterministic (eta = 0); categorical cells take the most likely class. With
  ``n_steps=1`` this is the one-call point estimate: the x0 prediction at t = T.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from itertools import pairwise

import torch

from .diffusion import MASK, GaussianDiffusion

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], "torch.Tensor | tuple[torch.Tensor, torch.Tensor]"]
METHODS = ("repaint", "conditional", "ddim")


# Ancestral steps' variance between beta_tilde (0) and beta (1), in log space. It depends on the step count: at
# 5 steps 0.65 gave draws as wide as the exact conditional distribution on Gaussian tables with the shipped
# model; at 3 steps of the draws (SamplerConfig.draw_steps) 0.8 gives the 90% ranges of 5 steps at 0.65
# on the draws benchmark (benchmarks/results/draws_speed.md), 0.65 narrower ones (Boston 0.72 vs 0.81).
VARIANCE_MIX = 0.8


@dataclass(frozen=True)
class SamplerConfig:
    """A checkpoint's tuned inference settings: stored in its metadata next to its ``DenoiserConfig``
    (``checkpoint.save_checkpoint``), read by the engine (``inference.impute``) wherever a caller leaves a
    setting unset (None). The one source of these defaults.

    draw_method, draw_steps: the sampler of multiple imputation when the point estimate ("point", or "ddim"
        with 1 step) was asked for. With the shared first call and no call at t = 0, 3 steps make one network
        call per draw (5 made three: the same CRPS, NRMSE of the mean and coverage at variance_mix 0.8,
        benchmarks/results/draws_speed.md) and 2 steps none for numeric cells (a draw is the first call's
        estimate plus the step's noise, then centred, calibrated and coupled below; categorical cells are
        revealed by one call at t = 0). 2 since session 20 (benchmarks/results/draws.md): 20 draws of a
        2,000 x 25 table take about a quarter of 3 steps' time; numeric CRPS within 1.5% (Auto 1.5% worse,
        Boston and Gaussian tables as good), the 90% ranges' coverage inside 87-93% on Boston and Auto (3
        steps: 0.87 on Auto's MAR), categorical draws' Brier score lower on the mixed tables.
    variance_mix: the ancestral steps' variance, see ``VARIANCE_MIX``.
    max_context_rows: most key rows a cell attends to across rows (benchmarks/results/context_rows.md), raised for
        a narrow table by ``context_cells`` (``context_rows``).
    context_cells: a table of F columns gets up to ``context_cells`` // F key rows where that is more than
        ``max_context_rows``, at most twice as many (``context_rows``): a query row's attention across rows costs
        key rows x columns, so a narrow table has the context of ``max_context_rows`` rows of a 20-column table
        at the same cost a row. 0: ``max_context_rows`` always. Session 51, the shipped weights, the real grid's
        four tables past 512 rows (quakes 5 columns, close_college 8: every row a key row; AER/Guns 11: 931;
        College 17: 602): NRMSE +0.0094 / +0.0043 / +0.0005 on the masks of seeds 0-2 / 3-5 / 6-8 (better on 198
        of 324 masks, worse on 126), the whole grid 0.7215 -> 0.7152 (+0.0062, se 0.0026) on seeds 0-2; MNAR gains,
        MAR loses a little (-0.012 on seeds 3-5 and 6-8); categorical cells, targets and draws level; 1,024 key
        rows on every table instead: +0.0081 / +0.0059 on the four tables, and a 1,000 x 20 table's time up as
        theirs (benchmarks/results/context_rows.md).
    chunk_rows: rows per network pass (over all samples of a pass).
    share_first_call: the draws' first call, at t = T, made once for all of them (``sample``): the same
        draws' quality (benchmarks/results/draws_speed.md) for one call fewer per draw.
    draw_context_rows: most key rows of the draws' per-sample calls (a seeded subset of the first call's);
        a call costs ~linear in it. The draws are centred on the point estimate (all key rows) and their
        spread calibrated, so they only shape the deviations: 64 draws as well as 512 (CRPS, coverage and
        NRMSE of the mean within 0.001-0.005 on the draws benchmark) at 0.6x the time on a 2,000-row table
        (benchmarks/results/draws_speed.md).
    center_draws, calibrate_spread: for the conditional and ddim samplers (RePaint's draws stay as drawn).
    center_draws: shift each numeric cell's draws so that their mean is the point estimate (``ensemble``; their
        deviations, and so the joint structure of a draw, kept): the draws' own mean is a noisier estimate of
        the same posterior mean (benchmarks/results/draws.md). Costs one network call per view.
    calibrate_spread: rescale each numeric column's draws about their mean so that their spread matches
        their errors on cells of this table that were observed and hidden for the purpose
        (``inference.spread_scales``); costs one more sampler run of ``inference.CALIBRATION_DRAWS`` draws. With
        ``center_draws``, categorical cells are drawn from the centre's class probabilities at a softmax
        temperature fitted alike (``inference.draw_temperature``; one more point estimate of the key rows).
    ensemble: the point estimate (and the centre of the draws) averaged over these views of the table
        (``transforms.MEMBERS``: "identity", "yeo_johnson"); one network call each. Both: better numeric,
        categorical and target cells than "identity" alone on every benchmark, at twice the point estimate's
        time (benchmarks/results/ensemble.md).
    ensemble_draws: several draws of the conditional sampler split among the ``ensemble``'s views (each view's
        draws made in its units and mapped back, interleaved), for the same number of network passes: CRPS
        0.314 / 0.348 -> 0.307 / 0.334 on Boston (MCAR / MAR), the same on a Gaussian table
        (benchmarks/results/draws.md).
    local_context_rows, local_query_rows: the point estimate (and the draws' centre) blended per column with a
        local one (``local_context.py``): the rows to impute grouped by k-means into groups of about
        ``local_query_rows``, each group imputed again with the ``local_context_rows`` rows nearest to it as
        its context, the blend weight of each column chosen on held-out observed cells of the key rows
        (``inference.local_weights``). 0: off.
    ensemble_folds: with the two views of the ``ensemble``, each numeric column with cells to impute weighs
        them (the Yeo-Johnson view's weight 0, 1/2 or 1) as ``ensemble_folds``-fold cross-validation over the
        key rows' observed cells of that column favours (``inference.view_weights``; 2 x folds more calls on
        the key rows). 0: the views averaged equally. ``DiffusionRegressor`` uses 3 for its target
        (benchmarks/results/regression.md, session 16).
    blend_inputs: each numeric column's point estimate (and the draws' centre) blended with the network's own
        closed-form inputs, the Gaussian conditional mean and the nearest-rows estimates, and since session 26 the
        engine's kernel ridge regression of the column on the row's other cells (``kernel_regression.py``) and since
        session 27 its extremely randomized trees (``tree_regression.py``), shifted to the network's level over the
        column's unknown cells (or at their own where the network read no shift: ``inference.read_no_shift``, or
        where the other columns predict the column's missingness: ``inference.missing_by_others``, session 43), by
        weights chosen on held-out observed cells of the key rows
        (``inference.input_weights``, ``blend_with_inputs``; one more network call per view on the key rows, and
        the inputs' own estimates). Stage 25, session 17 (benchmarks/results/blend_inputs.md): real-table
        numeric NRMSE 0.7997 -> 0.7934 (MissForest-like 0.793), Gaussian tables 1.040 -> 1.033 times the exact
        conditional mean's error, draws' CRPS 0.312 -> 0.308, categorical cells and targets unchanged; the point
        estimate takes 2.2-2.8x as long. ``DiffusionClassifier`` and ``DiffusionRegressor`` do not blend
        (``estimators.PREDICTOR_BLEND_INPUTS``).
    snap_draws: draws of a discrete numeric column (at most ``inference.SNAP_MAX_VALUES`` distinct observed
        values, each seen ``SNAP_MIN_REPEATS`` times on average) moved onto the observed values
        (``inference.snap_to_support``: a cell's draws take the column's frequencies tilted to the draws' mean,
        each at its own quantile), as predictive mean matching's are; not RePaint's. benchmarks/results/draws.md:
        session 18, nearest value, CRPS on Boston and Auto 4-7% lower; session 21, frequencies and columns of up
        to 100 values, Auto 3-4% and Boston 3% lower again; Gaussian tables unchanged.
    couple_draws: the draws' deviations from their mean coupled within each row by the conditional correlation of
        the row's unknown numeric cells given its known ones, under a Gaussian fitted to the key rows
        (``inference.coupled``). The network's draws of two unknown cells of one row come out nearly independent
        (on Gaussian tables the slope of their correlation on the exact conditional correlation is 0.01-0.02 at
        3 or 10 steps, MICE's 0.95), so a multiple-imputation analysis of two jointly missing variables would
        see them uncorrelated; not RePaint's. Session 19. Since session 20 each cell's deviations are also
        scaled by its conditional sd given the row's known cells, over the mean of its column's (the column
        keeps its calibrated spread): a cell whose row has its other cells known is drawn narrower than one
        whose row misses most (the correlation of the draws' sd with the exact conditional sd, per column,
        0.42 on a Gaussian table; 0.10 uncoupled at 3 steps, 0.01 at 2); CRPS 0-0.5% lower on Boston, Auto
        and Gaussian tables (benchmarks/results/draws.md).
    parameter_draws: each draw's unknown numeric cells shifted by how much the Gaussian conditional mean moves
        when the Gaussian is fitted to a bootstrap resample of the key rows (``inference.parameter_shifts``; one
        resample per draw): the draws carry the uncertainty of the fitted relations, coherently across the table,
        as a proper multiple imputation's do (MICE draws its regressions' coefficients, Amelia fits EM to
        bootstrap resamples). Without it the draws are centred on one point estimate, and a coefficient fitted
        on the completed tables varies less between draws than between tables: the pooled 95% intervals of
        ``benchmarks/rubin_coverage.py`` under MAR covered 88% / 74% (a category's coefficient and its covariate's);
        with it 95% / 93% (session 28, benchmarks/results/rubin_coverage.md; no coverage there below 91%, some
        intervals wider than MICE's); not RePaint's.
    """

    draw_method: str = "conditional"
    draw_steps: int = 2
    variance_mix: float = VARIANCE_MIX
    max_context_rows: int = 512
    context_cells: int = 10240
    chunk_rows: int = 1024
    share_first_call: bool = True
    draw_context_rows: int = 64
    center_draws: bool = True
    calibrate_spread: bool = True
    ensemble: tuple[str, ...] = ("identity", "yeo_johnson")
    ensemble_draws: bool = True
    local_context_rows: int = 0
    local_query_rows: int = 64
    ensemble_folds: int = 0
    blend_inputs: bool = True
    snap_draws: bool = True
    couple_draws: bool = True
    parameter_draws: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "ensemble", tuple(self.ensemble))  # a list when read back from JSON

    def to_dict(self) -> dict:
        return asdict(self)


def context_rows(max_context_rows: int, context_cells: int, n_columns: int) -> int:
    """Most key rows of a table of ``n_columns`` columns (``SamplerConfig.context_cells``): ``max_context_rows``,
    or ``context_cells`` // ``n_columns`` where that is more, at most twice ``max_context_rows``."""
    return max(max_context_rows, min(context_cells // max(n_columns, 1), 2 * max_context_rows))


def repaint_schedule(t_T: int, jump_length: int = 10, jump_n_sample: int = 10) -> list[int]:
    """Timesteps visited by RePaint, as in the official ``get_schedule_jump`` (n_sample = 1).

    Returns ``[t_T - 1, ..., -1]``; consecutive pairs ``(a, b)`` with ``b < a`` are denoising steps from ``a``
    and pairs with ``b > a`` are jumps back (forward noising to ``b``). (250, 10, 10) gives 2,410 denoising
    steps and 2,160 jumps back.
    """
    if t_T < 1 or jump_length < 1 or jump_n_sample < 1:
        raise ValueError("t_T, jump_length and jump_n_sample must be >= 1")
    jumps = {j: jump_n_sample - 1 for j in range(0, t_T - jump_length, jump_length)}
    t, ts = t_T, []
    while t >= 1:
        t -= 1
        ts.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                ts.append(t)
    ts.append(-1)
    # Invariants of the official _check_times: starts at t_T - 1, ends at -1, moves by one step at a time.
    assert ts[0] == t_T - 1 and ts[-1] == -1
    assert all(abs(a - b) == 1 for a, b in pairwise(ts))
    assert all(-1 <= x < t_T for x in ts)
    return ts


def count_calls(schedule: list[int]) -> tuple[int, int]:
    """(denoiser calls, jumps back) of a RePaint schedule."""
    down = sum(b < a for a, b in pairwise(schedule))
    return down, len(schedule) - 1 - down


def _split(out: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    return (out[0], out[1]) if isinstance(out, tuple) else (out, None)


def _draw_categories(logits: torch.Tensor, generator: torch.Generator | None, greedy: bool) -> torch.Tensor:
    """Codes (as float) from logits (..., C): argmax if greedy, else one categorical draw per cell."""
    if greedy:
        return logits.argmax(-1).float()
    probs = torch.softmax(logits.float(), -1).reshape(-1, logits.shape[-1])
    return torch.multinomial(probs, 1, generator=generator).view(logits.shape[:-1]).float()


def sample(
    denoiser: Denoiser,
    diffusion: GaussianDiffusion,
    x_known: torch.Tensor,
    known: torch.Tensor,
    *,
    method: str = "conditional",
    n_steps: int = 50,
    jump_length: int = 1,
    jump_n_sample: int = 1,
    generator: torch.Generator | None = None,
    is_cat: torch.Tensor | None = None,
    clip: float | None = None,
    variance_mix: float = VARIANCE_MIX,
    share_first_call: bool = False,
    first_denoiser: Denoiser | None = None,
) -> torch.Tensor:
    """Fill the unknown cells of ``x_known`` (B, N, F); returns x0 with known cells equal bit for bit.

    Args:
        denoiser: callable as in the module docstring.
        diffusion: the model's diffusion (over the original steps); respaced here to ``n_steps``.
        x_known: (B, N, F) values; anything (NaN included) at unknown cells. Categorical cells hold codes.
        known: (B, N, F) bool, True where the cell is observed.
        method: "repaint", "conditional" or "ddim".
        n_steps: length of the respaced chain (RePaint's t_T).
        jump_length, jump_n_sample: RePaint resampling (1, 1 = none); used by "repaint" and "conditional".
        generator: the only source of randomness (same generator state -> same result).
        is_cat: bool broadcastable to (B, N, F) marking categorical columns, e.g. (B, 1, F); None = all numeric.
        clip: optional clamp of the x0 estimate of numeric cells (in standardized units).
        variance_mix: ancestral steps' variance between beta_tilde (0) and beta (1), in log space
            (``GaussianDiffusion.p_mean_variance``). With the shipped model at 5 steps (benchmarks/draws.py)
            0 gives draws too narrow (~half the true values inside their 90% range) and 1 too wide; CRPS is
            flat between 0.5 and 0.8. See ``VARIANCE_MIX``.
        share_first_call: the batch holds copies of one table (multiple imputation): the first call, at
            t = T, is made once with x_T at its mean (the point estimate's input, ``inference.point_input``)
            and its x0 serves every sample; each sample's own x_T still enters its posterior step. At t = T
            the input carries no signal, so the call's x0 is the same estimate up to the network's noise.
            Not for "repaint" (its first call sees noisy known cells, different per sample).
        first_denoiser: the denoiser of that shared call (None = ``denoiser``), e.g. one that attends to more
            rows than the per-sample calls can afford.

    The network is not called at the last step (original t = 0) unless a categorical cell is still masked:
    there x0 is read off x_t (below), and only the reveal of masked cells needs logits.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if share_first_call and method == "repaint":
        raise ValueError("share_first_call needs a conditional sampler; RePaint's first inputs differ per sample")
    chain = diffusion.respaced(n_steps)
    device = x_known.device
    cat = torch.zeros_like(known) if is_cat is None else is_cat.to(device).expand_as(known)
    num = ~cat
    known = known.bool()
    x0_known = torch.where(known, x_known, torch.zeros_like(x_known))  # NaN-free copy for the noise math
    unconditional = method == "repaint"
    net_known = torch.zeros_like(known) if unconditional else known
    B = x_known.shape[0]

    def noise_like(x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)

    def known_at(i: int) -> torch.Tensor:
        # Known cells as the network should see them at chain position i (RePaint Alg. 1 line 5).
        if not unconditional:
            return x0_known
        noisy = chain.q_sample(x0_known, i, noise_like(x0_known))
        if cat.any():
            noisy = torch.where(cat, chain.q_sample_categorical(x0_known, i, generator), noisy)
        return noisy

    # Start: unknown numeric cells pure noise, unknown categorical cells masked.
    x = torch.where(cat, torch.full_like(x0_known, MASK), noise_like(x0_known))
    # With jump_n_sample = 1 the schedule is the plain descent n-1, ..., 0, -1 (every method uses it).
    schedule = repaint_schedule(chain.n_chain, jump_length, jump_n_sample)
    root_abar_0 = float(diffusion.alphas_cumprod[0]) ** 0.5
    for step, (a, b) in enumerate(pairwise(schedule)):
        if b > a:  # jump back a -> b = a + 1 (RePaint's undo): re-noise the current sample one step
            x = torch.where(cat, chain.q_step_up_categorical(x, b, generator), chain.q_step_up(x, b, noise_like(x)))
            continue
        i = a
        x = torch.where(known, known_at(i), x)
        if chain.original_t(i) == 0 and not bool((cat & ~known & (x == MASK)).any()):
            # The last step, at the original chain's first noise level: x_t is x0 up to noise of std
            # sqrt(1 - abar_0) (~0.006), known exactly; the network's x0 there is the less accurate of the two.
            x = torch.where(num, x / root_abar_0, x)
            continue
        t = torch.full((B,), chain.original_t(i), dtype=torch.long, device=device)
        if share_first_call and step == 0:
            mean_input = torch.where(num & ~known, torch.zeros_like(x), x)  # x_T at its mean
            out, logits = _split((first_denoiser or denoiser)(mean_input[:1], t[:1], net_known[:1]))
            out = out.expand_as(x)
            logits = None if logits is None else logits.expand(B, *logits.shape[1:])
        else:
            out, logits = _split(denoiser(x, t, net_known))
        if logits is None and bool((cat & ~known).any()):
            raise ValueError("the table has unknown categorical cells but the denoiser returns no logits")
        if method == "ddim":
            x0_hat, eps_hat = chain.predict_x0_eps(out, x, i)
            if clip is not None:
                x0_hat = x0_hat.clamp(-clip, clip)
            x_num = chain.ddim_step(x0_hat, eps_hat, i)
        else:
            mean, var, _ = chain.p_mean_variance(out, x, i, clip, variance_mix)
            x_num = mean + (var**0.5) * noise_like(x) if i > 0 else mean
        if chain.original_t(i) == 0:  # the last step (see above), here with masked cells left to reveal
            x_num = x / root_abar_0
        x_new = torch.where(num, x_num, x)
        if logits is not None and cat.any():
            # Masked cells are revealed with the absorbing chain's probability (all of them at i = 0).
            reveal = torch.rand(x.shape, generator=generator, device=device) < chain.unmask_probability(i)
            reveal &= cat & (x == MASK)
            drawn = _draw_categories(logits, generator, greedy=method == "ddim")
            x_new = torch.where(reveal, drawn, x_new)
        x = x_new
    # Known cells bit for bit; torch.where so NaN in x_known at unknown cells never leaks.
    return torch.where(known, x_known, x)
