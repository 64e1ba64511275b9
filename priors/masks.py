"""Masks of known cells: MCAR, MAR, MNAR, whole-column, block and prediction (query rows).

Every mechanism is written the same way: a *score* per cell (higher = goes missing first), a set of
*eligible* cells, and a number ``k`` of cells to hide. The ``k`` highest-scoring eligible cells become
unknown, so the requested rate is met exactly (to one cell) instead of only in expectation; for the
logistic mechanisms (MAR, MNAR) this is the same as calibrating the logistic intercept per table:
score = logit + Logistic noise, hidden iff score > threshold, i.e. P(missing) = sigmoid(logit - threshold).

Guarantees, for every kind: each column keeps >= 2 known cells (its two lowest-scoring cells are never
hidden; for MAR these depend on observed values only, so the mechanism stays MAR) and each table has >= 1
unknown cell. A rate a mechanism cannot reach under those rules (MAR can only hide non-driver columns;
a column can lose at most N - 2 cells) is clipped to the largest reachable one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ._random import Rng, standardize
from .config import MASK_KINDS, PriorConfig

NEG_INF = float("-inf")


def sample_mask(
    cfg: PriorConfig,
    rng: Rng,
    kind: str | Sequence[str],
    x: Tensor,
    is_cat: Tensor,
    target: Tensor,
    rate: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw which cells of the tables are known.

    x (B, N, F) complete tables (categorical codes as floats); is_cat bool (B, F); target int64 (B,);
    ``kind``: one of MASK_KINDS for the whole batch, or a sequence of B kinds (one per table).
    ``rate`` (B,): share of unknown cells, or for "prediction" the share of query rows; drawn from
    ``cfg.missing_rate`` / ``cfg.query_frac`` when None.

    Returns ``known`` bool (B, N, F) and ``query`` bool (B, N) (rows whose target cell is hidden by a
    prediction mask; all False for other kinds).
    """
    B, N, F = x.shape
    if N < 3:
        raise ValueError(f"masks need >= 3 rows (2 known + 1 unknown per column), got {N}")
    kinds = [kind] * B if isinstance(kind, str) else list(kind)
    if len(kinds) != B or not set(kinds) <= set(MASK_KINDS):
        raise ValueError(f"kind must be one of {MASK_KINDS} or a list of B={B} of them, got {kind!r}")
    if F < 2 and "mar" in kinds:
        raise ValueError("MAR masks need >= 2 columns (a fully observed driver and a masked one)")
    signal = _cell_signal(rng, x, is_cat, cfg.max_classes)

    score = eligible = k = query = None
    for name in dict.fromkeys(kinds):  # distinct kinds, in a deterministic order
        r = rate
        if r is None:
            lo, hi = cfg.query_frac if name == "prediction" else cfg.missing_rate
            r = rng.uniform_t((B,), lo, hi)
        s, e, kk, q = _MECHANISMS[name](cfg, rng, signal, target, r.to(x.device).float())
        if score is None:
            score, eligible, k, query = s, e, kk, q
        else:
            use = torch.tensor([kd == name for kd in kinds], device=x.device)
            score = torch.where(use.view(B, 1, 1), s, score)
            eligible = torch.where(use.view(B, 1, 1), e, eligible)
            k = torch.where(use, kk, k)
            query = torch.where(use.view(B, 1), q, query)
    missing = _hide_top_k(score, eligible, k)
    return ~missing, query & missing.gather(2, target.view(B, 1, 1).expand(B, N, 1)).squeeze(-1)


def _cell_signal(rng: Rng, x: Tensor, is_cat: Tensor, levels: int) -> Tensor:
    """A unit-scale value per cell (B, N, F) that MAR/MNAR logits depend on.

    Numeric columns: standardized and clamped (so a skewed column's tail doesn't make the logistic a hard
    step); categorical columns: a random effect per level, since codes have no order.
    """
    B, N, F = x.shape
    numeric = standardize(torch.where(is_cat.unsqueeze(1), 0.0, x)).clamp(-3.0, 3.0)
    # A fixed number of levels: the random draws must not depend on the data (MAR masks would then
    # depend on the values of masked columns through the generator state).
    codes = torch.where(is_cat.unsqueeze(1), x, 0.0).long().clamp(0, levels - 1)
    level_effect = rng.randn(B, 1, F, levels).expand(B, N, F, levels)
    categorical = level_effect.gather(-1, codes.unsqueeze(-1)).squeeze(-1)
    return torch.where(is_cat.unsqueeze(1), categorical, numeric)


def _logistic(rng: Rng, *shape: int) -> Tensor:
    u = rng.rand(*shape).clamp(1e-7, 1 - 1e-7)
    return torch.log(u) - torch.log1p(-u)


def _n_cells(rate: Tensor, n: int) -> Tensor:
    return torch.round(rate * n).long()


# Each mechanism: (cfg, rng, signal (B,N,F), target (B,), rate (B,)) -> (score, eligible, k, query).


def _mcar(cfg: PriorConfig, rng: Rng, signal: Tensor, target: Tensor, rate: Tensor) -> tuple:
    B, N, F = signal.shape
    everything = torch.ones(B, N, F, dtype=torch.bool, device=signal.device)
    return rng.rand(B, N, F), everything, _n_cells(rate, N * F), _no_query(signal)


def _mar(cfg: PriorConfig, rng: Rng, signal: Tensor, target: Tensor, rate: Tensor) -> tuple:
    """Fully observed driver columns; other cells missing with P = sigmoid(w . drivers - c)."""
    B, N, F = signal.shape
    n_drivers = (rng.uniform_t((B,), *cfg.mar_driver_frac) * F).round().long()
    # Leave enough non-driver columns to reach the rate (a column can lose at most N - 2 cells).
    room = torch.floor(F * (1 - rate * N / (N - 2))).long()
    n_drivers = torch.minimum(n_drivers, room).clamp(1, F - 1)
    is_driver = rng.permutation_t(B, F) < n_drivers.unsqueeze(-1)  # (B, F): a random n_drivers-subset
    slope = rng.uniform_t((B, 1, F), *cfg.mar_strength) / torch.sqrt(n_drivers.view(B, 1, 1).float())
    w = rng.randn(B, F, F) * is_driver.unsqueeze(-1) * slope  # w[b, i, j]: driver i -> cell of column j
    logit = torch.bmm(signal, w)  # (B, N, F): reads driver columns only
    eligible = ~is_driver.unsqueeze(1).expand(B, N, F)
    return logit + _logistic(rng, B, N, F), eligible, _n_cells(rate, N * F), _no_query(signal)


def _mnar(cfg: PriorConfig, rng: Rng, signal: Tensor, target: Tensor, rate: Tensor) -> tuple:
    """Self-masking: P(missing) = sigmoid(a_j * own value - c), a_j of random sign per column."""
    B, N, F = signal.shape
    sign = torch.where(rng.rand(B, 1, F) < 0.5, -1.0, 1.0)
    slope = rng.uniform_t((B, 1, F), *cfg.mnar_strength) * sign
    everything = torch.ones(B, N, F, dtype=torch.bool, device=signal.device)
    return slope * signal + _logistic(rng, B, N, F), everything, _n_cells(rate, N * F), _no_query(signal)


def _column(cfg: PriorConfig, rng: Rng, signal: Tensor, target: Tensor, rate: Tensor) -> tuple:
    """A few columns missing in most rows (all but >= 2); any remainder spills over at random."""
    B, N, F = signal.shape
    fill = rng.uniform_t((B,), *cfg.column_fill)
    n_cols = torch.round(rate * F / fill).long().clamp(1, F)  # overflow beyond N - 2 rows spills
    chosen = rng.permutation_t(B, F) < n_cols.unsqueeze(-1)  # (B, F)
    score = chosen.unsqueeze(1).float() + rng.rand(B, N, F)
    everything = torch.ones(B, N, F, dtype=torch.bool, device=signal.device)
    return score, everything, _n_cells(rate, N * F), _no_query(signal)


def _block(cfg: PriorConfig, rng: Rng, signal: Tensor, target: Tensor, rate: Tensor) -> tuple:
    """One contiguous block of rows x columns, sized so its area is the requested number of cells."""
    B, N, F = signal.shape
    k = _n_cells(rate, N * F).clamp(1, (N - 2) * F)
    min_cols = torch.ceil(k / (N - 2)).long()  # the block may span at most N - 2 rows
    n_cols = rng.randint_t((B,), min_cols, F)
    n_rows = torch.ceil(k / n_cols).long()
    row0 = rng.randint_t((B,), 0, N - n_rows)
    col0 = rng.randint_t((B,), 0, F - n_cols)
    rows = torch.arange(N, device=signal.device).view(1, N)
    cols = torch.arange(F, device=signal.device).view(1, F)
    in_rows = (rows >= row0.view(B, 1)) & (rows < (row0 + n_rows).view(B, 1))  # (B, N)
    in_cols = (cols >= col0.view(B, 1)) & (cols < (col0 + n_cols).view(B, 1))  # (B, F)
    score = (in_rows.unsqueeze(-1) & in_cols.unsqueeze(1)).float() + rng.rand(B, N, F)
    everything = torch.ones(B, N, F, dtype=torch.bool, device=signal.device)
    return score, everything, k, _no_query(signal)


def _prediction(cfg: PriorConfig, rng: Rng, signal: Tensor, target: Tensor, rate: Tensor) -> tuple:
    """``rate`` of the rows are query rows with a hidden target; features get light MCAR (or none)."""
    B, N, F = signal.shape
    n_query = _n_cells(rate, N).clamp(1, N - 2)  # >= 2 context rows keep the target known
    query = rng.permutation_t(B, N) < n_query.unsqueeze(-1)  # (B, N)
    feature_rate = rng.uniform_t((B,), *cfg.query_feature_missing)
    feature_rate = feature_rate * rng.bernoulli_t((B,), cfg.p_query_feature_missing)
    is_target = torch.nn.functional.one_hot(target, F).bool().unsqueeze(1)  # (B, 1, F)
    # Query targets score in (2, 3) so they are hidden first; features in (0, 1) for the MCAR part.
    score = torch.where(is_target, 2.0 + rng.rand(B, N, 1), rng.rand(B, N, F))
    eligible = ~is_target | query.unsqueeze(-1)
    k = n_query + _n_cells(feature_rate, N * (F - 1))
    return score, eligible, k, query


def _no_query(signal: Tensor) -> Tensor:
    return torch.zeros(signal.shape[:2], dtype=torch.bool, device=signal.device)


_MECHANISMS = {
    "mcar": _mcar,
    "mar": _mar,
    "mnar": _mnar,
    "column": _column,
    "block": _block,
    "prediction": _prediction,
}


def _hide_top_k(score: Tensor, eligible: Tensor, k: Tensor) -> Tensor:
    """Hide the k (B,) highest-scoring eligible cells of each table; returns ``missing`` (B, N, F).

    The two lowest-scoring cells of every column are protected first (>= 2 known per column), and k is
    clipped to [1, number of hideable cells] (>= 1 unknown per table).
    """
    B, N, F = score.shape
    score = torch.where(eligible, score, NEG_INF)
    protected = torch.zeros_like(eligible).scatter_(1, score.argmin(1, keepdim=True), True)
    second = torch.where(protected, float("inf"), score).argmin(1, keepdim=True)
    protected.scatter_(1, second, True)
    score = torch.where(protected, NEG_INF, score)
    hideable = score > NEG_INF
    k = torch.minimum(k.clamp(min=1), hideable.sum((1, 2)))
    threshold = _kth_largest(score.view(B, N * F), k).view(B, 1, 1)
    return (score >= threshold) & hideable


def _kth_largest(values: Tensor, k: Tensor) -> Tensor:
    """The k-th largest entry of each row: values (B, n), k (B,) in [1, n] -> (B,)."""
    if values.device.type == "cpu":  # numpy's sort is ~15x faster than torch's CPU sort at these sizes
        ascending = torch.from_numpy(np.sort(values.numpy(), axis=1))
    else:
        ascending = values.sort(dim=1).values
    return ascending.gather(1, (values.shape[1] - k).unsqueeze(-1)).squeeze(-1)
