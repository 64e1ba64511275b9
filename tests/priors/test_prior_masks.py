"""Masks: achieved rates, MAR / MNAR dependence structure, prediction masks, guarantees."""

from __future__ import annotations

import pytest
import torch

from priors import PriorConfig, sample_batch, sample_mask
from priors._random import Rng

CFG = PriorConfig()
B, N, F = 32, 50, 6


def _tables(seed: int = 0, family: str = "scm") -> dict:
    return sample_batch(
        CFG,
        torch.Generator().manual_seed(seed),
        batch_size=B,
        n_rows=N,
        n_features=F,
        family=family,
        mask_kind="mcar",
    )


def _mask(kind, tables: dict, rate: torch.Tensor | None, seed: int = 1, x: torch.Tensor | None = None):
    rng = Rng(torch.Generator().manual_seed(seed))
    x = tables["x"] if x is None else x
    return sample_mask(CFG, rng, kind, x, tables["is_cat"], tables["target"], rate)


def _check_guarantees(known: torch.Tensor) -> None:
    assert (known.sum(1) >= 2).all()
    assert ((~known).flatten(1).sum(1) >= 1).all()


@pytest.mark.parametrize("kind", ["mcar", "mar", "mnar", "column", "block"])
@pytest.mark.parametrize("rate", [0.02, 0.2, 0.45, 0.7])
def test_rate_is_met(kind: str, rate: float) -> None:
    tables = _tables()
    known, query = _mask(kind, tables, torch.full((B,), rate))
    _check_guarantees(known)
    assert not query.any()
    achieved = (~known).float().mean((1, 2))
    # Exact to one cell; a rate above what the mechanism can reach is clipped to the reachable maximum
    # (every column keeps 2 known cells; MAR also keeps >= 1 driver column fully observed).
    reachable = (N - 2) / N * ((F - 1) / F if kind == "mar" else 1.0)
    expected = min(rate, reachable)
    tolerance = 1.0 / (N * F) + 1e-6
    if rate <= reachable - 0.02:
        assert (achieved - expected).abs().max() <= tolerance, (kind, achieved)
    else:
        assert (achieved <= expected + tolerance).all()
        assert (achieved >= min(rate, (N - 2) / N * 0.5)).all()


def test_rates_drawn_from_config_and_per_table() -> None:
    tables = _tables()
    known, _ = _mask("mcar", tables, None)
    achieved = (~known).float().mean((1, 2))
    lo, hi = CFG.missing_rate
    assert (achieved >= lo).all() and (achieved <= hi + 1 / (N * F)).all()
    assert achieved.std() > 0.05  # one rate per table, not per batch


def test_mar_depends_on_fully_observed_drivers_only() -> None:
    tables = _tables(seed=3)
    known, _ = _mask("mar", tables, torch.full((B,), 0.4), seed=7)
    drivers = known.all(1)  # (B, F): driver columns are fully observed
    assert drivers.any(1).all() and (~drivers).any(1).all()
    # Changing every value outside the driver columns must not change the mask (same generator state).
    x = tables["x"].clone()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(11)) * 100
    x = torch.where(drivers.unsqueeze(1), x, x + noise)
    known_again, _ = _mask("mar", tables, torch.full((B,), 0.4), seed=7, x=x)
    assert torch.equal(known, known_again)
    # ...while changing a driver column does change it (the mechanism is not MCAR).
    x = torch.where(drivers.unsqueeze(1), tables["x"] + noise, tables["x"])
    known_changed, _ = _mask("mar", tables, torch.full((B,), 0.4), seed=7, x=x)
    assert not torch.equal(known, known_changed)


def test_mnar_depends_on_the_cells_own_value() -> None:
    tables = _tables(seed=4, family="gaussian")  # all numeric
    known, _ = _mask("mnar", tables, torch.full((B,), 0.3), seed=2)
    x = tables["x"]
    z = (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)
    missing = (~known).float()
    # Per column, the point-biserial correlation of "missing" with the cell's own value.
    m = missing - missing.mean(1, keepdim=True)
    corr = (m * z).mean(1) / m.std(1).clamp_min(1e-6)
    assert corr.abs().mean() > 0.3
    mcar_known, _ = _mask("mcar", tables, torch.full((B,), 0.3), seed=2)
    m = (~mcar_known).float() - (~mcar_known).float().mean(1, keepdim=True)
    assert ((m * z).mean(1) / m.std(1).clamp_min(1e-6)).abs().mean() < 0.2


def test_column_and_block_structure() -> None:
    tables = _tables(seed=5)
    known, _ = _mask("column", tables, torch.full((B,), 0.3))
    per_column = (~known).float().mean(1)  # (B, F)
    # Missing cells concentrate in few columns, each missing in most rows.
    assert (per_column.max(1).values >= 0.7).all()
    known, _ = _mask("block", tables, torch.full((B,), 0.3))
    missing = ~known
    for b in range(B):
        rows = missing[b].any(1).nonzero().squeeze(-1)
        cols = missing[b].any(0).nonzero().squeeze(-1)
        assert (rows.diff() == 1).all() and (cols.diff() == 1).all()  # contiguous
        block = missing[b][rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert block.float().mean() > 0.9  # a (nearly) solid block


def test_prediction_masks() -> None:
    tables = _tables(seed=6)
    frac = torch.linspace(0.1, 0.5, B)
    known, query = _mask("prediction", tables, frac)
    _check_guarantees(known)
    target = tables["target"]
    target_known = known.gather(2, target.view(B, 1, 1).expand(B, N, 1)).squeeze(-1)
    assert torch.equal(query, ~target_known)  # the target is hidden exactly on the query rows
    assert torch.equal(query.sum(1), torch.round(frac * N).long())
    features = torch.ones(B, F, dtype=torch.bool).scatter_(1, target.unsqueeze(-1), False)
    feature_missing = (~known).transpose(1, 2)[features].float().mean()
    assert feature_missing <= CFG.query_feature_missing[1] + 0.01


def test_mixed_kinds_per_table() -> None:
    tables = _tables(seed=7)
    kinds = ["prediction", "mcar", "mar", "mnar", "column", "block"] * (B // 6) + ["mcar"] * (B % 6)
    known, query = _mask(kinds, tables, None)
    _check_guarantees(known)
    is_prediction = torch.tensor([k == "prediction" for k in kinds])
    assert query[is_prediction].any(1).all()
    assert not query[~is_prediction].any()


def test_same_generator_state_same_mask() -> None:
    tables = _tables(seed=8)
    a = _mask("mnar", tables, None, seed=5)
    b = _mask("mnar", tables, None, seed=5)
    assert torch.equal(a[0], b[0])
