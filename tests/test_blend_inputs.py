"""The point estimate blended with the network's closed-form inputs (``SamplerConfig.blend_inputs``,
inference.input_weights / blend_with_inputs): weights chosen per column on held-out observed cells, the inputs
moved to the network's level over each column's unknown cells."""

import numpy as np
import pytest
import torch
from test_inference import IS_CAT, make_table

from icl_diffusion import DiffusionImputer
from icl_diffusion.checkpoint import Pretrained
from icl_diffusion.diffusion import GaussianDiffusion
from icl_diffusion.inference import INPUT_WEIGHT_STEP, blend_with_inputs, input_grid
from icl_diffusion.model import Denoiser, DenoiserConfig


def test_grid_is_the_simplex_with_the_network_alone_first():
    grid = input_grid(3)
    steps = round(1 / INPUT_WEIGHT_STEP)
    assert len(grid) == (steps + 1) * (steps + 2) // 2
    assert torch.allclose(grid.sum(1), torch.ones(len(grid), dtype=torch.float64))
    assert grid[0].tolist() == [1.0, 0.0, 0.0] and bool((grid >= 0).all())


def test_blend_keeps_the_network_level_known_and_categorical_cells():
    g = torch.Generator().manual_seed(0)
    x, known = make_table(3, N=50)
    x = torch.nan_to_num(x)
    net = torch.where(known, x, torch.randn(50, 5, generator=g) + 2.0)  # a network that moved the level
    inputs = [torch.where(known, x, torch.randn(50, 5, generator=g)) for _ in range(2)]
    weights = torch.tensor([[0.25, 0.5, 0.25]] * 5, dtype=torch.float64)
    out = blend_with_inputs(net, inputs, known, IS_CAT, weights)
    unknown = ~known
    for j in torch.nonzero(~IS_CAT).squeeze(1).tolist():
        rows = unknown[:, j]
        assert float(out[rows, j].mean()) == pytest.approx(float(net[rows, j].mean()), abs=1e-5)  # the net's level
        assert not torch.allclose(out[rows, j], net[rows, j])  # but the inputs' shape
    assert torch.equal(out[known], net[known])
    assert torch.equal(out[:, IS_CAT], net[:, IS_CAT])
    alone = torch.tensor([[1.0, 0.0, 0.0]] * 5, dtype=torch.float64)
    assert torch.equal(blend_with_inputs(net, inputs, known, IS_CAT, alone), net)


def test_columns_of_own_level_take_the_inputs_level():
    """``own_level``: there the blend is the plain weighted sum, the inputs at their own levels; elsewhere as above."""
    g = torch.Generator().manual_seed(0)
    x, known = make_table(3, N=50)
    x = torch.nan_to_num(x)
    net = torch.where(known, x, torch.randn(50, 5, generator=g) + 2.0)
    inputs = [torch.where(known, x, torch.randn(50, 5, generator=g)) for _ in range(2)]
    weights = torch.tensor([[0.0, 0.5, 0.5]] * 5, dtype=torch.float64)
    own = torch.tensor([True, False, True, False, True])
    out = blend_with_inputs(net, inputs, known, IS_CAT, weights, own_level=own)
    shifted = blend_with_inputs(net, inputs, known, IS_CAT, weights)
    for j in torch.nonzero(~IS_CAT).squeeze(1).tolist():
        rows = ~known[:, j]
        if own[j]:
            assert torch.allclose(out[rows, j], 0.5 * inputs[0][rows, j] + 0.5 * inputs[1][rows, j])
        else:
            assert torch.equal(out[:, j], shifted[:, j])
    assert torch.equal(out[known], net[known]) and torch.equal(out[:, IS_CAT], net[:, IS_CAT])


def _linear_table(n=300, seed=0):
    """Numeric columns all near-exact linear functions of one factor, 30% MCAR."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 1))
    x = z @ rng.standard_normal((1, 6)) + 0.05 * rng.standard_normal((n, 6))
    missing = rng.random(x.shape) < 0.3
    return x, missing


def test_a_network_that_adds_nothing_is_overruled_by_its_inputs_where_the_table_says_so():
    """A randomly initialized network on a table its closed-form Gaussian estimate nearly solves: held-out cells
    give the input the weight, and the errors about each column's mean error (the level stays the network's)
    fall to the input's own; observed cells stay as they were. The same engine and estimator users run."""
    from icl_diffusion.baselines import closed_form

    cfg = DenoiserConfig(d_model=32, n_blocks=2, n_heads=4, max_classes=5, gaussian_em_iters=3,
                         neighbour_feature=True)
    torch.manual_seed(0)
    pre = Pretrained(Denoiser(cfg).eval(), GaussianDiffusion())
    x, missing = _linear_table()
    x_in = np.where(missing, np.nan, x)

    def centred_error(model, blend):
        out = DiffusionImputer(checkpoint=model, random_state=0, blend_inputs=blend, ensemble=("identity",),
                               device="cpu").fit_transform(x_in)
        assert np.array_equal(out[~missing], x[~missing])
        e = np.where(missing, out - x, np.nan)
        return float(np.sqrt(np.nanmean((e - np.nanmean(e, 0)) ** 2)) / x.std())

    net, blended, alone = centred_error(pre, False), centred_error(pre, True), centred_error(closed_form(pre), False)
    assert alone < 0.3 * net  # the table is one the closed form solves
    assert blended < 1.2 * alone, (net, blended, alone)


def test_the_inputs_blended_are_those_the_network_was_handed():
    """``forward(return_inputs=True)`` returns the closed-form estimates the network computed for its input (no
    second fit): on a table without point masses, exactly the closed-form and nearest-rows baselines' outputs
    for the same call, through the key-row pass and a query pass alike."""
    from icl_diffusion.baselines import ClosedFormDenoiser, NeighbourDenoiser, SharpNeighbourDenoiser
    from icl_diffusion.inference import first_call

    cfg = DenoiserConfig(d_model=32, n_blocks=2, n_heads=4, max_classes=5, gaussian_em_iters=3,
                         neighbour_feature=True)
    torch.manual_seed(0)
    net, diffusion = Denoiser(cfg).eval(), GaussianDiffusion()
    assert net.closed_form_inputs == ("gaussian", "neighbours", "sharp")
    x, missing = _linear_table(n=120)
    x, known = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(~missing)
    is_cat, n_classes = torch.zeros(6, dtype=torch.bool), torch.zeros(6, dtype=torch.long)
    keys = torch.arange(0, 120, 2)  # half the rows key rows: the rest go through a query pass
    out = first_call(net, diffusion, x, known, is_cat, n_classes, keys, chunk_rows=32, return_inputs=True)
    assert out[2].shape == (1, 120, 6, 3)
    for k, cls in enumerate((ClosedFormDenoiser, NeighbourDenoiser, SharpNeighbourDenoiser)):
        alone = first_call(cls(cfg).eval(), diffusion, x, known, is_cat, n_classes, keys, chunk_rows=32)
        assert torch.allclose(out[2][..., k], alone[0], atol=1e-6), cls.__name__
    plain = first_call(net, diffusion, x, known, is_cat, n_classes, keys, chunk_rows=32)
    assert all(torch.equal(a, b) for a, b in zip(plain, out[:2]))  # asking for them changes nothing else


def test_blend_off_is_the_point_estimate_and_on_changes_only_unknown_cells(monkeypatch):
    """The blend moves unknown cells only; categorical ones only through the trees' class probabilities
    (``CATEGORICAL_TREES``)."""
    from test_local_context import _impute

    from icl_diffusion import inference

    x, known = make_table(1, N=60)
    off = _impute(x, known, blend_inputs=False)
    on = _impute(x, known, blend_inputs=True)
    assert np.array_equal(on, _impute(x, known))  # the default (``SamplerConfig``): on
    k = known.numpy()
    assert np.array_equal(on[0][k], off[0][k])
    monkeypatch.setattr(inference, "CATEGORICAL_TREES", False)
    numeric_only = _impute(x, known, blend_inputs=True)
    assert np.array_equal(numeric_only[0][:, IS_CAT.numpy()], off[0][:, IS_CAT.numpy()])


def test_blend_inputs_must_be_a_flag():
    with pytest.raises(ValueError, match="blend_inputs"):
        DiffusionImputer(blend_inputs="yes").fit(np.ones((5, 2)))


def test_held_cells_sit_where_the_missing_cells_sit():
    """``missingness_odds``: a column missing where another is large (MAR) gets its held cells, drawn with the
    odds (``hold_out``), among the rows where that other column is large; under MCAR the odds are nearly flat,
    so the held cells are about a uniform draw's. What the blend's weights are chosen on (``input_weights``)."""
    from icl_diffusion.inference import MATCH_ODDS_RANGE, hold_out, missingness_odds

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 4))
    is_cat = np.zeros(4, dtype=bool)
    mar = np.ones_like(x, dtype=bool)
    mar[:, 0] = ~(x[:, 1] + 0.5 * rng.logistic(size=2000) > 1.0)  # column 0 lost where column 1 is large
    columns = np.array([True, False, False, False])
    odds = missingness_odds(x, mar, is_cat, columns)
    assert np.all(odds[:, 1:] == 1.0)
    lo, hi = np.median(odds[mar[:, 0], 0]) * np.array(MATCH_ODDS_RANGE)
    assert odds[:, 0].min() >= lo * (1 - 1e-9) and odds[:, 0].max() <= hi * (1 + 1e-9)
    matched = hold_out(mar, columns, np.random.default_rng(1), weights=odds)[:, 0]
    uniform = hold_out(mar, columns, np.random.default_rng(1))[:, 0]
    assert matched.sum() == uniform.sum() and not (matched & ~mar[:, 0]).any()  # observed cells only
    lost, held, drawn = x[~mar[:, 0], 1].mean(), x[uniform, 1].mean(), x[matched, 1].mean()
    assert drawn > held + 0.5 * (lost - held), (held, drawn, lost)  # at least halfway to the missing cells
    # Fitted on a subsample of the rows (large tables), the odds still find them.
    import icl_diffusion.inference as engine

    fit_rows = engine.MATCH_FIT_ROWS
    engine.MATCH_FIT_ROWS = 300
    try:
        sub = missingness_odds(x, mar, is_cat, columns)
    finally:
        engine.MATCH_FIT_ROWS = fit_rows
    assert not np.array_equal(sub, odds) and np.corrcoef(np.log(sub[:, 0]), np.log(odds[:, 0]))[0, 1] > 0.9
    mcar = rng.random(x.shape) > 0.2
    flat = missingness_odds(x, mcar, is_cat, np.ones(4, dtype=bool))
    assert flat.max() / flat.min() < 4.0 and odds[:, 0].max() / odds[:, 0].min() > 100.0


def test_the_sharp_estimate_is_offered_only_to_tables_of_near_duplicate_rows(monkeypatch):
    """``input_weights`` with a random-init network: on a Gaussian table the sharp nearest-rows estimate gets no
    weight anywhere; on a table of near-duplicate rows (each row twice, a nonlinear column) it lowers the pooled
    held-out loss by more than its ``INPUT_MIN_GAIN`` and takes weight, and none where the bar is above its gain."""
    from icl_diffusion import inference
    from icl_diffusion.inference import input_weights

    cfg = DenoiserConfig(d_model=32, n_blocks=2, n_heads=4, max_classes=5, gaussian_em_iters=3,
                         neighbour_feature=True)
    torch.manual_seed(0)
    net, diffusion = Denoiser(cfg).eval(), GaussianDiffusion()
    sharp = 1 + net.closed_form_inputs.index("sharp")
    rng = np.random.default_rng(0)
    gaussian = rng.standard_normal((200, 1)) @ rng.standard_normal((1, 5)) + rng.standard_normal((200, 5))
    z = rng.uniform(-2, 2, (100, 4))
    panel = np.column_stack([z, np.sin(3 * z[:, 0]) * np.cos(3 * z[:, 1])])
    panel = np.repeat(panel, 2, axis=0) + 0.01 * rng.standard_normal((200, 5))
    weights = []
    for table in (gaussian, panel):
        x = torch.as_tensor((table - table.mean(0)) / table.std(0), dtype=torch.float32)
        known = torch.as_tensor(rng.random(x.shape) > 0.1)
        x = torch.where(known, x, 0.0)
        w = input_weights(net, diffusion, x, known, torch.zeros(5, dtype=torch.bool), torch.zeros(5, dtype=torch.long),
                          torch.ones(5, dtype=torch.bool), 1024, ("identity",), None, 0)
        weights.append(w.weights[:, sharp])
    assert bool((weights[0] == 0).all()) and bool((weights[1] > 0).any()), weights
    monkeypatch.setitem(inference.INPUT_MIN_GAIN, "sharp", 0.999)
    w = input_weights(net, diffusion, x, known, torch.zeros(5, dtype=torch.bool), torch.zeros(5, dtype=torch.long),
                      torch.ones(5, dtype=torch.bool), 1024, ("identity",), None, 0)
    assert bool((w.weights[:, sharp] == 0).all()) and torch.allclose(w.weights.sum(1), torch.ones(5, dtype=torch.float64))


def _smooth_column(rng):
    """A column that is a quadratic form of four others: smooth, not linear (the kernel regression's case)."""
    z = rng.uniform(-2, 2, (300, 4))
    return np.column_stack([z, (z**2).sum(1) - 2 * z[:, 0] * z[:, 1]])


def _stepped_column(rng):
    """A column that steps with two others (their signs' exclusive or): neither linear nor smooth (the trees')."""
    z = rng.uniform(-2, 2, (300, 4))
    return np.column_stack([z, np.where((z[:, 0] > 0) ^ (z[:, 1] > 0), 1.0, -1.0) + 0.1 * rng.standard_normal(300)])


@pytest.mark.parametrize("name, nonlinear", [("kernel", _smooth_column), ("trees", _stepped_column)])
def test_an_engine_input_is_offered_only_where_the_held_cells_ask_for_it(monkeypatch, name, nonlinear):
    """``input_weights`` with a random-init network: the engine's input (the kernel ridge regression, the extremely
    randomized trees; after the network's inputs) gets no weight on a Gaussian table and weight on a table with the
    nonlinear column it reads, and none there either when its ``INPUT_MIN_GAIN`` bar is above its gain."""
    from icl_diffusion import inference
    from icl_diffusion.inference import input_weights

    cfg = DenoiserConfig(d_model=32, n_blocks=2, n_heads=4, max_classes=5, gaussian_em_iters=3,
                         neighbour_feature=True)
    torch.manual_seed(0)
    net, diffusion = Denoiser(cfg).eval(), GaussianDiffusion()
    slot = 1 + (*net.closed_form_inputs, *inference.ENGINE_INPUTS).index(name)
    rng = np.random.default_rng(0)
    gaussian = rng.standard_normal((300, 1)) @ rng.standard_normal((1, 5)) + rng.standard_normal((300, 5))
    table = nonlinear(rng)

    def weights(table, known):
        x = torch.as_tensor((table - table.mean(0)) / table.std(0), dtype=torch.float32)
        return input_weights(net, diffusion, torch.where(known, x, 0.0), known, torch.zeros(5, dtype=torch.bool),
                             torch.zeros(5, dtype=torch.long), torch.ones(5, dtype=torch.bool), 1024, ("identity",),
                             None, 0).weights[:, slot]

    masks = [torch.as_tensor(rng.random((300, 5)) > 0.1) for _ in range(2)]
    assert bool((weights(gaussian, masks[0]) == 0).all())
    assert bool((weights(table, masks[1]) > 0).any())
    monkeypatch.setitem(inference.INPUT_MIN_GAIN, name, 0.999)
    assert bool((weights(table, masks[1]) == 0).all())


def _stepped_table_weights(monkeypatch, prior_cells, soft_cells):
    """``input_weights``' weights (7, K) with ``INPUT_PRIOR_CELLS`` and ``INPUT_SOFT_CELLS`` set, a random network, on a
    table of four Gaussian columns, two uniform ones and one that steps with those two (the trees'), 20% MCAR."""
    from icl_diffusion import inference

    cfg = DenoiserConfig(d_model=32, n_blocks=2, n_heads=4, max_classes=5, gaussian_em_iters=3,
                         neighbour_feature=True)
    torch.manual_seed(0)
    net, diffusion = Denoiser(cfg).eval(), GaussianDiffusion()
    rng = np.random.default_rng(0)
    gaussian = rng.standard_normal((300, 1)) @ rng.standard_normal((1, 4)) + 0.5 * rng.standard_normal((300, 4))
    z = rng.uniform(-2, 2, (300, 2))
    step = np.where((z[:, 0] > 0) ^ (z[:, 1] > 0), 1.0, -1.0) + 0.1 * rng.standard_normal(300)
    table = np.column_stack([gaussian, z, step])
    x = torch.as_tensor((table - table.mean(0)) / table.std(0), dtype=torch.float32)
    known = torch.as_tensor(rng.random((300, 7)) > 0.2)
    monkeypatch.setattr(inference, "INPUT_PRIOR_CELLS", prior_cells)
    monkeypatch.setattr(inference, "INPUT_SOFT_CELLS", soft_cells)
    return inference.input_weights(net, diffusion, torch.where(known, x, 0.0), known, torch.zeros(7, dtype=torch.bool),
                                   torch.zeros(7, dtype=torch.long), torch.ones(7, dtype=torch.bool), 1024,
                                   ("identity",), None, 0).weights


def test_columns_follow_the_table_s_blend_by_its_pseudo_cells(monkeypatch):
    """``INPUT_PRIOR_CELLS``: pseudo-cells of the table's mean held-out loss added to each column's. With none each
    column takes the blend its own few held cells choose (chance among dozens: several different ones), with the
    shipped number fewer distinct ones, with a very large number the table's pooled choice for every column (each
    column one grid blend: no soft choice)."""
    from icl_diffusion import inference

    def distinct_blends(prior_cells):
        return len({tuple(w.tolist()) for w in _stepped_table_weights(monkeypatch, prior_cells, 0.0)})

    shipped = distinct_blends(inference.INPUT_PRIOR_CELLS)  # first: the others set it
    own, pooled = distinct_blends(0), distinct_blends(10**9)
    assert own >= 4 and shipped < own and pooled == 1, (own, shipped, pooled)


def test_a_column_s_blend_mixes_the_blends_its_held_cells_cannot_tell_apart(monkeypatch):
    """``INPUT_SOFT_CELLS``: with the shipped number a column's weights mix the grid's near ties (some column's weights
    are on no grid point); with 0 every column takes one grid blend. Either way each sums to 1."""
    from icl_diffusion import inference

    shipped = inference.INPUT_SOFT_CELLS  # before the calls set it

    def off_grid(weights):
        assert torch.allclose(weights.sum(1), torch.ones(len(weights), dtype=weights.dtype))
        grid = input_grid(weights.shape[1]).to(weights.dtype)
        return int((torch.cdist(weights, grid).min(1).values > 1e-6).sum())

    assert shipped > 0 and off_grid(_stepped_table_weights(monkeypatch, 160, shipped)) >= 2
    assert off_grid(_stepped_table_weights(monkeypatch, 160, 0.0)) == 0


def test_least_loss_without_pseudo_cells_skips_refused_blends():
    """A blend refused for the whole table (its loss infinite) is never chosen, with pseudo-cells or without."""
    from icl_diffusion.local_context import least_loss

    loss = torch.tensor([[1.0, 5.0], [torch.inf, torch.inf], [2.0, 1.0]], dtype=torch.float64)
    cells, columns = torch.tensor([10.0, 10.0]), torch.tensor([True, True])
    assert least_loss(loss, cells, columns, 0).tolist() == [0, 2]
    assert least_loss(loss, cells, columns, 10**6).tolist() == [2, 2]  # pooled: 3.0 against 6.0


def test_soft_choice_shares_near_ties_and_never_a_refused_blend():
    """``soft_choice``: 0 soft cells is ``least_loss``'s blend; otherwise a column's weights mix the blends within a
    few held cells' worth of loss of its best (more of them as the soft cells grow), a blend far behind or refused
    (infinite loss) getting none."""
    from icl_diffusion.local_context import least_loss, soft_choice

    grid = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]], dtype=torch.float64)
    loss = torch.tensor([[10.0, 30.0], [10.5, 20.0], [30.0, torch.inf]], dtype=torch.float64)  # 10 cells each
    cells, columns = torch.tensor([10.0, 10.0]), torch.tensor([True, True])
    assert torch.equal(soft_choice(loss, cells, columns, 0, grid, 0.0), grid[least_loss(loss, cells, columns, 0)])
    one, three = (soft_choice(loss, cells, columns, 0, grid, s) for s in (1.0, 3.0))
    assert torch.allclose(one.sum(1), torch.ones(2, dtype=torch.float64))
    # column 0: blend 1 is half a cell's worth behind (weight e^-0.5 at 1 soft cell), blend 2 twenty cells' (~0)
    assert torch.allclose(one[0], torch.tensor([0.8112, 0.1888], dtype=torch.float64), atol=1e-4)
    assert three[0, 1] > one[0, 1]
    # column 1: the best (20) is 10 of its cells' worth (2 each) ahead of blend 0 and blend 2 is refused
    assert one[1, 1] == pytest.approx(0.5, abs=0.01) and one[1, 0] >= 0.5


@pytest.mark.parametrize("on_keys", [False, True])
def test_a_whole_table_s_weights_are_chosen_on_the_rows_its_trees_learn_from(monkeypatch, on_keys):
    """A table imputed as a whole (more rows than the context): the blend's held cells and the trees they judge span
    every row the final call's trees learn from (``tree_regression.fit_rows``), the key rows the network's context,
    so each input is judged as it is used; ``WEIGHTS_ON_KEYS`` (sessions 17-28): the key rows alone. Rows imputed
    against given key rows: those alone either way."""
    from test_local_context import _impute

    import icl_diffusion.inference as engine

    monkeypatch.setattr(engine, "WEIGHTS_ON_KEYS", on_keys)
    seen, trees = [], []
    weights, estimates = engine.input_weights, engine.tree_estimates

    def recording_weights(model, diffusion, x, known, *args, key_rows=None, **kwargs):
        seen.append((len(x), None if key_rows is None else len(key_rows)))
        return weights(model, diffusion, x, known, *args, key_rows=key_rows, **kwargs)

    def recording_trees(filled, known, is_cat, key_rows, *args):
        trees.append((len(filled), len(key_rows)))
        return estimates(filled, known, is_cat, key_rows, *args)

    monkeypatch.setattr(engine, "input_weights", recording_weights)
    monkeypatch.setattr(engine, "tree_estimates", recording_trees)
    x, known = make_table(1, N=60)
    known[known.all(1), 4] = False  # every row has a cell to impute: all 60 go through the call
    _impute(x, known, max_context_rows=20, context_cells=0)  # 20 key rows (the narrow table's widening off)
    assert seen == [(20, None)] if on_keys else seen == [(60, 20)]
    assert trees[0] == ((20, 20) if on_keys else (60, 60))  # held-out trees: fitted as the final call's would be
    seen.clear()
    _impute(x, known, key_rows=np.arange(20))
    assert seen == [(20, None)]


def test_a_shift_is_read_only_where_the_network_departs_from_the_gaussian_estimate_consistently():
    """``inference.read_no_shift``: a column whose unknown cells the network moves alike (a reading of the
    missingness) reads a shift; one it moves by a small mean or by a large but scattered one (cell-by-cell
    departures, as a worse extrapolation gives) does not, and its inputs keep their own levels."""
    from icl_diffusion.inference import LEVEL_AGREEMENT, read_no_shift

    g = torch.Generator().manual_seed(0)
    gaussian = torch.randn(200, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(200, 4, generator=g, dtype=torch.float64)
    mean = torch.tensor([3 * LEVEL_AGREEMENT, LEVEL_AGREEMENT / 2, 3 * LEVEL_AGREEMENT, 3 * LEVEL_AGREEMENT])
    scatter = torch.tensor([0.02, 0.02, 3.0, 0.02])
    network = gaussian + mean + scatter * noise
    unknown = torch.ones(200, 4, dtype=torch.bool)
    unknown[:100, 3] = False
    network[:100, 3] = gaussian[:100, 3] + 10 * noise[:100, 3]  # known cells' scatter does not count
    assert read_no_shift(network, gaussian, unknown).tolist() == [False, True, True, False]


def test_a_column_missing_because_of_the_others_is_told_from_one_missing_by_its_own_value(monkeypatch):
    """``missing_by_others``: a column lost where another column is large (MAR) is flagged; a column lost where its
    own value is large (self-masking MNAR) is not, though the other columns predict that too (through its own
    value, which they predict); nor one lost at random, nor an observed one. What lets the blend's inputs keep their
    own levels under MAR (``input_weights``) while the network's reading of a shift stands under MNAR."""
    from icl_diffusion import inference
    from icl_diffusion.inference import missing_by_others

    rng = np.random.default_rng(0)
    n = 1000
    common = rng.standard_normal((n, 1))
    x = common + 0.6 * rng.standard_normal((n, 5))  # five correlated columns
    x = (x - x.mean(0)) / x.std(0)
    known = np.ones_like(x, dtype=bool)
    known[:, 0] = ~(x[:, 1] - x[:, 2] + rng.logistic(size=n) > 1.0)  # MAR: lost where column 1 exceeds column 2
    known[:, 3] = ~(2 * x[:, 3] + rng.logistic(size=n) > 1.5)  # MNAR: lost where its own value is large
    known[:, 4] = rng.random(n) > 0.3  # MCAR
    is_cat = np.zeros(5, dtype=bool)
    columns = ~known.all(0)
    assert missing_by_others(x, known, is_cat, columns).tolist() == [True, False, False, False, False]
    # The others predict the self-masked column's missingness strongly, but only along its prediction.
    assert (known[:, 3] == (x[:, [0, 1, 2, 4]].mean(1) < 0.5)).mean() > 0.6
    # A categorical column is not tested; off, nothing is flagged.
    assert not missing_by_others(x, known, np.array([True, False, False, False, False]), columns).any()
    with monkeypatch.context() as patch:
        patch.setattr(inference, "MAR_TEST_LOG10P", 0.0)
        assert not missing_by_others(x, known, is_cat, columns).any()
    # A categorical column's level drives the missingness (its levels unrelated to the numeric columns): found through
    # the levels' indicators, and not without them.
    kind = rng.integers(0, 3, n).astype(float)
    table = np.column_stack([x, kind])
    seen = np.ones_like(table, dtype=bool)
    seen[:, 1] = ~((kind == 2) & (rng.random(n) < 0.6))
    seen[rng.random(n) < 0.1, 5] = False
    with_kind = np.array([False] * 5 + [True])
    assert missing_by_others(table, seen, with_kind, ~seen.all(0)).tolist() == [False, True] + [False] * 4
    monkeypatch.setattr(inference, "MAR_TEST_CATEGORICAL", False)
    assert not missing_by_others(table, seen, with_kind, ~seen.all(0)).any()
