"""Proper multiple imputation (``SamplerConfig.parameter_draws``, ``inference.parameter_shifts``): each draw's
unknown numeric cells are shifted by how much the Gaussian conditional mean moves when the Gaussian is fitted to a
bootstrap resample of the key rows, so the completed tables carry the uncertainty of the table's relations."""

from __future__ import annotations

import numpy as np
import pytest

from icl_diffusion import DiffusionImputer
from icl_diffusion.inference import parameter_shifts

pytestmark = pytest.mark.usefixtures("single_thread")


def _linear_table(n, seed=0):
    """y = x1 + 0.5 x2 + noise, (x1, x2) correlated 0.5, a two-level category k; 25% of y unknown (MCAR)."""
    g = np.random.default_rng(seed)
    x = g.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], n)
    y = x[:, 0] + 0.5 * x[:, 1] + g.normal(size=n)
    table = np.column_stack([y, x, g.integers(0, 2, n)]).astype(np.float64)
    table[:, :3] = (table[:, :3] - table[:, :3].mean(0)) / table[:, :3].std(0)
    known = np.ones(table.shape, dtype=bool)
    known[g.random(n) < 0.25, 0] = False
    known[g.random(n) < 0.1, 3] = False
    return table, known


def _ols_prediction_sd(table, known):
    """The sd of the least-squares prediction of y at its unknown cells, fitted on the rows that know y."""
    rows = known[:, 0]
    design = np.column_stack([np.ones(rows.sum()), table[rows, 1:3]])
    beta = np.linalg.lstsq(design, table[rows, 0], rcond=None)[0]
    s2 = np.sum((table[rows, 0] - design @ beta) ** 2) / (rows.sum() - 3)
    at = np.column_stack([np.ones((~rows).sum()), table[~rows, 1:3]])
    return float(np.sqrt(np.einsum("ij,jk,ik->i", at, s2 * np.linalg.inv(design.T @ design), at)).mean())


def test_shifts_are_the_bootstrap_spread_of_the_fitted_conditional_mean():
    is_cat, n_classes = np.array([False, False, False, True]), np.array([0, 0, 0, 2])
    sd = {}
    for n in (300, 1200):
        table, known = _linear_table(n)
        shifts = parameter_shifts(table, known, is_cat, n_classes, np.arange(n), 10, 200, 0, table).numpy()
        assert (shifts[:, known] == 0).all() and (shifts[..., 3] == 0).all()  # known and categorical cells stay
        sd[n] = shifts[:, ~known[:, 0], 0].std(0).mean()
        assert sd[n] == pytest.approx(_ols_prediction_sd(table, known), rel=0.25)
        np.testing.assert_allclose(shifts.mean(0), 0.0, atol=1e-12)  # centred: the draws keep their mean
    assert sd[300] / sd[1200] == pytest.approx(2.0, rel=0.25)  # the fit's uncertainty: 1 / sqrt(rows)
    table, known = _linear_table(300)
    again = [parameter_shifts(table, known, is_cat, n_classes, np.arange(300), 10, 5, s, table) for s in (0, 0, 1)]
    assert np.array_equal(again[0], again[1]) and not np.array_equal(again[0], again[2])


def _slopes(draws):
    """Least-squares slopes of y on x1, x2 in each completed table (K, 2)."""
    out = []
    for d in draws:
        d = np.asarray(d, dtype=np.float64)
        design = np.column_stack([np.ones(len(d)), d[:, 1:3]])
        out.append(np.linalg.lstsq(design, d[:, 0], rcond=None)[0][1:])
    return np.array(out)


def test_completed_tables_differ_as_the_fit_is_uncertain():
    """The path users run (``DiffusionImputer.sample``), shipped model, y and x1 missing at random: with the shifts
    the slopes fitted on the 20 completed tables vary more from table to table (the between-imputation variance of
    Rubin's rules; measured 0.0030 -> 0.0073 for x1's, 0.0100 -> 0.0393 for x2's), while each cell's spread over the
    draws stays the calibrated one (0.83 -> 0.88, within 15%) and observed cells stay as given."""
    g = np.random.default_rng(0)
    n = 300
    x = g.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], n)
    y = x[:, 0] + 0.5 * x[:, 1] + g.normal(size=n)
    table = np.column_stack([y, x])
    holey = table.copy()
    holey[np.argsort(x[:, 1])[:75], 0] = np.nan  # y missing where x2 is low
    rest = np.flatnonzero(~np.isnan(holey[:, 0]))
    holey[rest[np.argsort(-y[rest])[:75]], 1] = np.nan  # x1 missing where y is high
    missing = np.isnan(holey)
    draws = {flag: np.stack(DiffusionImputer(device="cpu", random_state=0, parameter_draws=flag).fit(holey)
                            .sample(holey, n_imputations=20)) for flag in (False, True)}
    between = {flag: _slopes(d).var(0, ddof=1) for flag, d in draws.items()}
    assert (between[True] > 1.5 * between[False]).all(), between
    spread = {flag: d[:, missing].std(0).mean() for flag, d in draws.items()}
    assert spread[True] == pytest.approx(spread[False], rel=0.15), spread
    assert (draws[True][:, ~missing] == holey[~missing]).all()


def test_a_bad_parameter_draws_is_refused_in_one_line():
    with pytest.raises(ValueError, match="parameter_draws must be True, False or None"):
        DiffusionImputer(parameter_draws="yes").fit(np.array([[1.0, np.nan], [2.0, 3.0], [3.0, 4.0]]))
