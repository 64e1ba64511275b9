"""Draws of discrete numeric columns taken from their observed values (``SamplerConfig.snap_draws``,
inference.snap_to_support): a draw of a count of cylinders is 4, 6 or 8, as predictive mean matching's are."""

import numpy as np
import pandas as pd
import pytest
import torch

from icl_diffusion import DiffusionImputer
from icl_diffusion.inference import SNAP_MAX_VALUES, SNAP_MIN_REPEATS, snap_to_support, tilted_frequencies

pytestmark = pytest.mark.usefixtures("single_thread")


def _discrete_table(n_draws, seed=0):
    g = np.random.default_rng(seed)
    N = 60
    x = np.c_[g.choice([-1.0, 0.5, 2.0], N), g.normal(size=N), g.integers(0, 3, N), g.choice([0.0, 1.0], N)]
    x = x.astype(np.float32)
    is_cat = np.array([False, False, True, False])
    known = g.random(x.shape) > 0.3
    draws = torch.as_tensor(g.normal(size=(n_draws, N, 4)) * 2, dtype=torch.float32)
    return x, known, is_cat, torch.where(torch.as_tensor(known), torch.as_tensor(x), draws)


@pytest.mark.parametrize("n_draws", [1, 4])
def test_snap_moves_unknown_cells_of_discrete_columns_onto_their_observed_values(n_draws):
    x, known, is_cat, draws = _discrete_table(n_draws)
    out = snap_to_support(draws, x, known, is_cat)
    for j in (0, 3):  # discrete numeric columns: every unknown cell on the column's observed values
        support = np.unique(x[known[:, j], j])
        cells, drawn = out[:, ~known[:, j], j].numpy(), draws[:, ~known[:, j], j].numpy()
        assert np.isin(cells, support).all()
        if n_draws == 1:  # one draw: the nearest value
            nearest = support[np.abs(drawn[..., None] - support).argmin(-1)]
            np.testing.assert_array_equal(cells, nearest)
        else:  # several: a cell's draws keep their order (a row's coupled cells stay coupled)
            order = np.argsort(drawn, axis=0)
            assert (np.diff(np.take_along_axis(cells, order, 0), axis=0) >= 0).all()
    assert torch.equal(out[:, :, [1, 2]], draws[:, :, [1, 2]])  # continuous and categorical columns as drawn
    assert torch.equal(out[:, torch.as_tensor(known)], draws[:, torch.as_tensor(known)])  # observed cells kept


def test_a_rare_value_between_common_ones_gets_its_frequency_not_its_stretch_of_the_line():
    """Cylinders 4 and 6 common, 5 rare: draws N(5, 1) of a cell split between 4 and 6 (their mean kept), where
    the nearest value would give 5 about 38% of them."""
    col = np.r_[np.full(48, 4.0), np.full(48, 6.0), np.full(2, 5.0), np.full(2, 8.0)].astype(np.float32)
    x = np.r_[col, np.float32(0)][:, None]
    known = np.ones_like(x, dtype=bool)
    known[-1] = False
    z = torch.as_tensor(np.random.default_rng(0).standard_normal(4000), dtype=torch.float32)
    draws = torch.as_tensor(x).expand(len(z), -1, -1).clone()
    draws[:, -1, 0] = 5 + (z - z.mean()) / z.std()
    cell = snap_to_support(draws, x, known, np.array([False]))[:, -1, 0].numpy()
    shares = {v: float(np.mean(cell == v)) for v in (4.0, 5.0, 6.0, 8.0)}
    assert shares[5.0] < 0.1 and shares[4.0] > 0.35 and shares[6.0] > 0.35, shares
    assert abs(cell.mean() - 5.0) < 0.02


def test_tilted_frequencies_reach_the_mean_and_move_the_frequencies_no_more_than_needed():
    p = torch.tensor([0.5, 0.1, 0.4], dtype=torch.float64)
    v = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    m = torch.tensor([(p * v).sum(), -0.5, 1.5, 5.0], dtype=torch.float64)
    q = tilted_frequencies(p, v, m, torch.tensor([0.0, 0.0, 3.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(q.sum(-1), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(q[0], p)  # the marginal's mean and a flat likelihood: the frequencies themselves
    torch.testing.assert_close((q[:3] * v).sum(-1), m[:3])
    assert q[3, 2] > 0.99  # a mean beyond the values: the largest one


def test_a_column_with_many_values_or_too_few_repeats_is_not_discrete():
    g = np.random.default_rng(1)
    many = np.round(g.normal(size=2000), 2)  # ~500 distinct values: more than SNAP_MAX_VALUES
    assert len(np.unique(many)) > SNAP_MAX_VALUES
    short = np.arange(12, dtype=float)  # 12 distinct values in 12 rows: no repeats
    few_repeats = np.repeat(np.arange(30.0), SNAP_MIN_REPEATS - 1)  # 30 values, each seen too few times
    for col in (many, short, few_repeats):
        x = col[:, None].astype(np.float32)
        known = np.ones_like(x, dtype=bool)
        known[:3] = False
        draws = torch.as_tensor(g.normal(size=(2, len(x), 1)), dtype=torch.float32)
        assert torch.equal(snap_to_support(draws, x, known, np.array([False])), draws)


def _table(n=200, seed=0):
    g = np.random.default_rng(seed)
    z = g.normal(size=n)
    df = pd.DataFrame({"cylinders": np.choose((z > -0.5).astype(int) + (z > 0.7), [4.0, 6.0, 8.0]),
                       "weight": 3000 + 600 * z + 100 * g.normal(size=n),
                       "flag": (z + g.normal(size=n) > 0).astype(float)})
    holes = g.random(df.shape) < 0.25
    return df.mask(holes), holes


def test_sample_draws_discrete_columns_on_their_support_and_transform_does_not_snap(tiny_checkpoint):
    """Estimator -> engine: ``sample``'s imputations of the float columns holding few values (cylinders 4/6/8, a
    0/1 flag) are observed values; the continuous column's are not; ``transform``'s average of several
    imputations and ``snap_draws=False`` are left as drawn; observed cells never change."""
    df, holes = _table()
    imp = DiffusionImputer(checkpoint=tiny_checkpoint, device="cpu", random_state=0).fit(df)
    draws = imp.sample(df, n_imputations=4)
    for d in draws:
        assert np.array_equal(d.to_numpy()[~holes], df.to_numpy()[~holes])
        assert d["cylinders"].isin([4.0, 6.0, 8.0]).all() and d["flag"].isin([0.0, 1.0]).all()
        assert not d.loc[holes[:, 1], "weight"].isin(df["weight"]).all()
    unsnapped = DiffusionImputer(checkpoint=tiny_checkpoint, device="cpu", random_state=0, snap_draws=False).fit(df)
    loose = unsnapped.sample(df, n_imputations=4)
    assert not all(d["cylinders"].isin([4.0, 6.0, 8.0]).all() for d in loose)
    averaged = DiffusionImputer(checkpoint=tiny_checkpoint, device="cpu", random_state=0, n_imputations=4,
                                method="conditional", n_steps=3).fit_transform(df)
    assert not averaged["cylinders"].isin([4.0, 6.0, 8.0]).all()


def test_repaint_draws_stay_as_drawn(tiny_checkpoint):
    df, _ = _table(80, seed=2)
    kw = {"checkpoint": tiny_checkpoint, "device": "cpu", "random_state": 0, "method": "repaint", "n_steps": 3}
    on = DiffusionImputer(**kw).fit(df).sample(df, n_imputations=2)
    off = DiffusionImputer(**kw, snap_draws=False).fit(df).sample(df, n_imputations=2)
    for a, b in zip(on, off):
        pd.testing.assert_frame_equal(a, b)


def test_snap_draws_must_be_a_flag():
    with pytest.raises(ValueError, match="snap_draws"):
        DiffusionImputer(snap_draws="yes").fit(np.ones((5, 2)))


def test_a_column_of_one_observed_value_gets_it():
    x = np.full((30, 1), 2.0, dtype=np.float32)
    known = np.ones_like(x, dtype=bool)
    known[:5] = False
    for n_draws in (1, 4):
        out = snap_to_support(torch.randn(n_draws, 30, 1), x, known, np.array([False]))
        assert (out[:, :5, 0] == 2.0).all()
