"""Multiple imputation of mixed tables: categorical cells drawn from calibrated class probabilities
(``inference.draw_temperature``, ``draw_levels``), and the coupling of a row's draws (``inference.coupled``): numbers
follow the row's drawn categories, and the spread follows how much of the row is missing compared with the cells it
was calibrated on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from icl_diffusion import DiffusionImputer, load_pretrained
from icl_diffusion.inference import (
    TEMPERATURE_GRID,
    coupled,
    draw_levels,
    draw_temperature,
    expanded_precision,
)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def shipped():
    return load_pretrained()


def slope(y: np.ndarray, g: np.ndarray) -> float:
    """Within-row slope of draws y on draws g (S, n): each row's deviations from its own mean over the draws."""
    gc, yc = g - g.mean(0), y - y.mean(0)
    return float((gc * yc).sum() / (gc**2).sum())


def category_table(n: int = 400, seed: int = 0):
    """Encoded table: a 2-level category g (codes 0/1) and y = 1.5 g + noise, standardized; 30% of the rows miss
    both cells."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    y = 1.5 * g + rng.normal(scale=0.6, size=n)
    y = (y - y.mean()) / y.std()
    x = np.column_stack([g, y]).astype(np.float32)
    known = np.ones(x.shape, dtype=bool)
    both = rng.random(n) < 0.3
    known[both] = False
    return x, known, both


def test_numbers_follow_the_rows_drawn_category():
    """Draws of g and y made independently get the Gaussian's regression of y on g's indicators, on the drawn
    indicators: within a row, y's draws now rise with g's as y rises with g in the table (the complete rows'
    slope; the draws are as wide as the Gaussian's sd of y in those rows, 1, so the regression is not rescaled
    to the draws' units); each cell keeps its mean and its spread over the draws (the column's mean spread, the calibrated one); known and categorical cells
    stay."""
    x, known, both = category_table()
    is_cat, n_classes = np.array([True, False]), np.array([2, 0])
    rng = np.random.default_rng(1)
    S = 400
    draws = torch.as_tensor(np.repeat(np.where(known, x, 0.0)[None], S, 0)).float()
    draws[:, both, 0] = torch.as_tensor(rng.integers(0, 2, (S, both.sum())), dtype=torch.float32)
    draws[:, both, 1] = torch.as_tensor(0.1 + rng.normal(size=(S, both.sum())), dtype=torch.float32)
    out = coupled(draws, known, is_cat, expanded_precision(x, known, is_cat, n_classes, np.arange(len(x)), 10))
    g, y = out[:, both, 0].numpy(), out[:, both, 1].numpy()
    complete = ~both
    table_slope = np.polyfit(x[complete, 0], x[complete, 1], 1)[0]
    assert abs(slope(draws[:, both, 1].numpy(), g)) < 0.1 * table_slope  # independent before
    assert slope(y, g) == pytest.approx(table_slope, rel=0.15)
    np.testing.assert_allclose(y.mean(0), draws[:, both, 1].numpy().mean(0), atol=1e-5)
    before = draws[:, both, 1].numpy().std(0)  # each cell's spread, up to the draws' chance correlation of g and y
    assert y.std(0).mean() == pytest.approx(before.mean(), rel=0.02)
    np.testing.assert_allclose(y.std(0), before, rtol=0.2)
    assert torch.equal(out[:, ~both], draws[:, ~both]) and torch.equal(out[:, :, 0], draws[:, :, 0])


def test_spread_follows_the_pattern_relative_to_the_calibration_cells():
    """With ``reference`` (the cells the spread was calibrated on: one cell hidden in otherwise known rows), a
    column's unknown cells whose rows miss every other cell too are drawn wider, by the ratio of their
    conditional sd to the reference cells' under the table's Gaussian (without it, the column's mean spread is
    kept: nothing to compare against)."""
    rng = np.random.default_rng(0)
    n = 600
    z = rng.normal(size=n)
    x = np.column_stack([z + 0.3 * rng.normal(size=n) for _ in range(3)]).astype(np.float32)
    x = (x - x.mean(0)) / x.std(0)
    known = np.ones(x.shape, dtype=bool)
    rows = rng.random(n) < 0.3
    known[rows] = False  # whole rows missing
    is_cat, n_classes = np.zeros(3, dtype=bool), np.zeros(3, dtype=np.int64)
    S = 300
    draws = torch.as_tensor(np.repeat(np.where(known, x, 0.0)[None], S, 0)).float()
    draws[:, rows] = torch.as_tensor(0.5 * rng.normal(size=(S, rows.sum(), 3)), dtype=torch.float32)
    keys = np.arange(n)
    hold = np.zeros(x.shape, dtype=bool)
    hold[np.flatnonzero(~rows)[:60], 0] = True  # column 0's calibration cells: the rest of their rows known
    fit = expanded_precision(x, known, is_cat, n_classes, keys, 10)
    plain = coupled(draws, known, is_cat, fit)
    wide = coupled(draws, known, is_cat, fit, reference=(keys, hold))
    sd_plain, sd_wide = plain[:, rows, 0].std(0).mean(), wide[:, rows, 0].std(0).mean()
    assert float(sd_plain) == pytest.approx(float(draws[:, rows, 0].std(0).mean()), rel=0.02)
    cov = np.cov(x[~rows].T)
    lam = 3 / (3 + (~rows).sum())  # the fit's shrinkage toward the diagonal (gaussian_feature._shrink)
    cov = (1 - lam) * cov + lam * np.diag(np.diag(cov))
    given_rest = cov[0, 0] - cov[0, 1:] @ np.linalg.solve(cov[1:, 1:], cov[1:, 0])
    assert float(sd_wide / sd_plain) == pytest.approx(np.sqrt(cov[0, 0] / given_rest), rel=0.15)
    assert torch.equal(wide[:, rows, 1], plain[:, rows, 1])  # no calibration cells in column 1: unchanged


def test_multiple_imputation_keeps_a_categorys_coefficient(shipped):
    """The path users run (``DiffusionImputer.sample``): a category g and a number y = 2 g + 0.5 x1 + noise hidden in
    the same rows. Within a row, the draws of y must rise with the draws of g, and the regression coefficient of y
    on g fitted on each completed table must stay near the complete data's. Session 22: within-row slope 1.11,
    coefficient 1.66 against 1.92; the numbers coupled only among themselves (session 21): -0.03 and 1.31;
    ``couple_draws=False``: 0.00 and 1.51, which fail here."""
    rng = np.random.default_rng(0)
    n = 500
    g = rng.integers(0, 2, n)
    x1 = rng.normal(size=n) + 0.8 * g
    x2 = rng.normal(size=n) + 0.8 * g
    y = 2.0 * g + 0.5 * x1 + rng.normal(scale=0.7, size=n)
    df = pd.DataFrame({"g": pd.Categorical(np.where(g == 1, "b", "a")), "x1": x1, "x2": x2, "y": y})
    both = rng.random(n) < 0.3
    holey = df.copy()
    holey.loc[both, ["g", "y"]] = np.nan
    draws = DiffusionImputer(checkpoint=shipped, random_state=0).fit(holey).sample(holey, 20)

    def coefficient(table: pd.DataFrame) -> float:
        design = np.column_stack([np.ones(n), (table["g"] == "b").astype(float), table["x1"]])
        return float(np.linalg.lstsq(design, table["y"].to_numpy(float), rcond=None)[0][1])

    drawn_g = np.stack([(d["g"] == "b").to_numpy(float)[both] for d in draws])
    drawn_y = np.stack([d["y"].to_numpy(float)[both] for d in draws])
    assert slope(drawn_y, drawn_g) > 0.6
    assert np.mean([coefficient(d) for d in draws]) > 0.8 * coefficient(df)


def test_levels_are_drawn_with_their_probabilities():
    logits = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 5.0]], [[0.0, 0.0, 0.0], [-1.0, 1.0, 9.0]]], dtype=torch.float64)
    n_classes = np.array([0, 2])  # a numeric column, then a 2-level one (the third logit is beyond its levels)
    levels = draw_levels(logits, n_classes, 4000, seed=0)
    assert levels.shape == (4000, 2, 2) and set(levels[:, :, 1].unique().tolist()) <= {0, 1}
    assert bool((levels[:, :, 0] == 0).all())
    expected = torch.softmax(logits[:, 1, :2], -1)[:, 0]  # P(level 0) per row
    assert (levels[:, :, 1] == 0).double().mean(0).tolist() == pytest.approx(expected.tolist(), abs=0.03)
    assert torch.equal(levels, draw_levels(logits, n_classes, 4000, seed=0))  # seeded


def test_draw_temperature_undoes_a_sharpened_network(shipped):
    """The categorical draws' temperature is fitted on hidden observed cells of the key rows: a network whose
    logits are 4 times larger (overconfident) gets a temperature 4 times larger, within the grid's step."""
    rng = np.random.default_rng(0)
    n = 300
    g = rng.integers(0, 3, n)
    x = np.column_stack([g, g + rng.normal(scale=0.8, size=n), rng.normal(size=n)]).astype(np.float32)
    x[:, 1:] = (x[:, 1:] - x[:, 1:].mean(0)) / x[:, 1:].std(0)
    known = rng.random(x.shape) > 0.2
    is_cat, n_classes = np.array([True, False, False]), np.array([3, 0, 0])
    settings = {"ensemble": ("identity",)}  # one view: its logits, not an average of probabilities
    base = draw_temperature(shipped, x, known, is_cat, n_classes, 0, np.arange(n), **settings)
    hook = shipped.model.register_forward_hook(lambda m, args, out: (out[0], 4 * out[1], *out[2:]))
    try:
        sharp = draw_temperature(shipped, x, known, is_cat, n_classes, 0, np.arange(n), **settings)
    finally:
        hook.remove()
    step = TEMPERATURE_GRID[1] / TEMPERATURE_GRID[0]
    assert 4 * base / step <= sharp <= 4 * base * step


def test_categorical_draws_follow_the_rows_known_cells(shipped):
    """A category g hidden alone in 30% of the rows, its numbers known: the 20 draws' level frequencies score a
    Brier well below draws from the column's own frequencies (which ignore the row), and not above the point
    estimate's one-hot fill (2 x its error rate)."""
    rng = np.random.default_rng(1)
    n = 400
    g = rng.integers(0, 2, n)
    df = pd.DataFrame({"g": pd.Categorical(np.where(g == 1, "b", "a")), "x1": rng.normal(size=n) + 1.2 * g,
                       "x2": rng.normal(size=n) - 0.8 * g})
    hide = rng.random(n) < 0.3
    holey = df.copy()
    holey.loc[hide, "g"] = np.nan
    imputer = DiffusionImputer(checkpoint=shipped, random_state=0).fit(holey)
    freq = np.mean([(d["g"] == "b").to_numpy(float)[hide] for d in imputer.sample(holey, 20)], 0)
    truth = g[hide]
    brier = float(np.mean(2 * (freq - truth) ** 2))
    marginal = float(np.mean(2 * ((holey["g"] == "b").sum() / holey["g"].notna().sum() - truth) ** 2))
    point = 2 * float(np.mean((imputer.transform(holey)["g"] == "b").to_numpy(float)[hide] != truth))
    assert brier < 0.8 * marginal and brier <= point  # session 22: 0.366, marginal 0.500, point 0.422


def test_two_categories_of_one_row_are_drawn_together(shipped):
    """Two flags that agree in 85% of the rows, hidden together in 30% of them: a row's draws of the second follow
    its draw of the first (``inference.coupled_levels``), so the completed tables keep the association. Session 22:
    they agree in 80% of the draws in those rows (independent draws: 53%, which fails here)."""
    rng = np.random.default_rng(0)
    n = 500
    g1 = rng.integers(0, 2, n)
    g2 = np.where(rng.random(n) < 0.85, g1, 1 - g1)
    df = pd.DataFrame({"g1": pd.Categorical(np.where(g1 == 1, "b", "a")),
                       "g2": pd.Categorical(np.where(g2 == 1, "d", "c")),
                       "x": rng.normal(size=n) + 0.5 * g1, "z": rng.normal(size=n)})
    both = rng.random(n) < 0.3
    holey = df.copy()
    holey.loc[both, ["g1", "g2"]] = np.nan
    draws = DiffusionImputer(checkpoint=shipped, random_state=0).fit(holey).sample(holey, 20)
    first = np.stack([(d["g1"] == "b").to_numpy()[both] for d in draws])
    second = np.stack([(d["g2"] == "d").to_numpy()[both] for d in draws])
    assert (first == second).mean() > 0.7
    assert abs(second.mean() - (g2 == 1).mean()) < 0.1  # the second flag's frequency is not pulled off
