"""Local contexts (local_context.py, inference.local_point): each row imputed again with its nearest rows as
context, blended per column with the global point estimate by weights chosen on held-out observed cells."""

import numpy as np
import pytest
import torch
from test_inference import IS_CAT, N_CLASSES, make_model, make_table

from icl_diffusion.local_context import (
    WEIGHT_GRID,
    choose_weights,
    kmeans,
    local_tables,
    row_space,
    standardize,
)


def test_kmeans_finds_separated_groups_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    z = torch.cat([torch.randn(30, 2, generator=g) * 0.1 + c for c in (torch.tensor([5.0, 0]), torch.tensor([-5.0, 0]),
                                                                           torch.tensor([0, 5.0]))])
    labels = kmeans(z, 3, torch.Generator().manual_seed(1))
    assert sorted(torch.bincount(labels).tolist()) == [30, 30, 30]
    assert all(len(labels[i * 30 : (i + 1) * 30].unique()) == 1 for i in range(3))
    assert torch.equal(labels, kmeans(z, 3, torch.Generator().manual_seed(1)))
    assert int(kmeans(z[:2], 5, torch.Generator()).max()) <= 1  # at most one group per row


def test_row_space_one_hot_levels_are_one_apart():
    filled = torch.tensor([[0.5, 0.0], [0.5, 2.0]])
    z = row_space(filled, torch.tensor([False, True]), torch.tensor([0, 3]))
    assert z.shape == (2, 4)
    assert float(torch.dist(z[0], z[1])) == pytest.approx(1.0)


@pytest.mark.parametrize("queries_are_keys", [True, False])
def test_local_tables_cover_every_row_to_impute_once(queries_are_keys):
    x, known = make_table(0, N=60)
    filled = torch.nan_to_num(x)
    candidates = torch.arange(60) if queries_are_keys else torch.arange(0, 60, 2)
    tables = local_tables(filled, known, IS_CAT, N_CLASSES, candidates, queries_are_keys, 10, 5, seed=3)
    todo = (~known).any(1).nonzero().squeeze(1)
    taken = torch.cat([rows[take] for rows, take, _ in tables])
    assert torch.equal(taken.sort().values, todo), "every row with an unknown cell, once"
    for rows, take, keys in tables:
        assert torch.equal(rows, rows.sort().values)
        context = rows[keys & ~take] if queries_are_keys else rows[keys]
        assert bool(torch.isin(context, candidates).all()), "contexts come from the candidates only"
        if queries_are_keys:
            assert bool(keys.all())
        else:
            assert int(keys.sum()) == 10 and not bool((keys & take & ~torch.isin(rows, candidates)).any())
    assert local_tables(filled, known, IS_CAT, N_CLASSES, candidates[:15], queries_are_keys, 10, 5, 3) == []


def test_standardize_numeric_columns_on_known_cells():
    x = torch.tensor([[1.0, 0.0, 4.0], [3.0, 1.0, 4.0], [float("nan"), 2.0, 4.0]])
    known = torch.tensor([[True, True, True], [True, True, True], [False, True, True]])
    mean, std = standardize(x, known, torch.tensor([False, True, False]))
    torch.testing.assert_close(mean, torch.tensor([2.0, 0.0, 0.0]))  # categorical and constant columns: as is
    torch.testing.assert_close(std, torch.tensor([1.0, 1.0, 1.0]))


def _impute(x, known, **kw):
    from icl_diffusion.checkpoint import Pretrained
    from icl_diffusion.diffusion import GaussianDiffusion
    from icl_diffusion.inference import impute

    return impute(Pretrained(make_model(), GaussianDiffusion()), torch.nan_to_num(x).numpy(), known.numpy(),
                  IS_CAT.numpy(), N_CLASSES.numpy(), **kw)


def test_local_point_estimate_keeps_observed_cells_and_only_changes_what_it_should():
    x, known = make_table(1, N=60)
    off = _impute(x, known, local_context_rows=0)
    on = _impute(x, known, local_context_rows=10, local_query_rows=5)
    k = known.numpy()
    np.testing.assert_array_equal(on[0][k], torch.nan_to_num(x).numpy()[k])
    assert np.isfinite(on).all() and not np.allclose(on[0][~k], off[0][~k])
    cat = np.broadcast_to(IS_CAT.numpy(), k.shape) & ~k
    assert np.array_equal(on[0][cat], np.rint(on[0][cat])) and (on[0][cat] >= 0).all()
    # a table with one context only (at most context + query rows): the global estimate, unchanged
    np.testing.assert_array_equal(_impute(x, known, local_context_rows=50, local_query_rows=10), off)


def test_local_contexts_make_rows_imputed_against_fitted_rows_independent_of_each_other():
    """With the context rows given (key_rows: an estimator's fitted rows), a row's imputation depends on them and
    on itself only, as without local contexts: imputing new rows one at a time or all together is the same."""
    x, known = make_table(2, N=70)
    fitted = torch.arange(50)
    together = _impute(x, known, key_rows=fitted.numpy(), local_context_rows=10, local_query_rows=5)[0]
    for r in (50, 57, 69):
        rows = torch.cat([fitted, torch.tensor([r])])
        alone = _impute(x[rows], known[rows], key_rows=fitted.numpy(), local_context_rows=10, local_query_rows=5)[0]
        np.testing.assert_allclose(alone[-1], together[r], atol=1e-5)


def test_choose_weights_follows_the_held_out_cells():
    """Column 0: the local estimate is right and the global one wrong (the largest weight); column 1: the reverse
    (0); column 2 (categorical): the local probabilities put more mass on the true levels (the largest weight);
    column 3: no held cell (0)."""
    g = torch.Generator().manual_seed(0)
    n = 200
    x = torch.randn(n, 4, generator=g)
    x[:, 2] = torch.randint(0, 3, (n,), generator=g).float()
    is_cat = torch.tensor([False, False, True, False])
    hold = torch.zeros(n, 4, dtype=torch.bool)
    hold[:100, :3] = True
    noise = torch.randn(n, 4, generator=g)
    glob, loc = x.clone(), x.clone()
    glob[:, 0] += noise[:, 0]
    loc[:, 1] += noise[:, 1]
    onehot = torch.nn.functional.one_hot(x[:, 2].long(), 3).double()
    p_glob = torch.zeros(n, 4, 3, dtype=torch.float64) + 1 / 3
    p_loc = p_glob.clone()
    p_loc[:, 2] = 0.8 * onehot + 0.1
    w = choose_weights(x, hold, is_cat, (glob, p_glob), (loc, p_loc))
    top = max(WEIGHT_GRID)
    assert w.tolist() == [top, 0.0, top, 0.0]
    # no gain: the global estimate alone (a tie goes to it)
    both = x.clone()
    both[:, 0] += noise[:, 0]
    assert choose_weights(x, hold, is_cat, (both, p_glob), (both, p_glob)).tolist() == [0.0] * 4
    rand = both + 0.5 * torch.randn(n, 4, generator=g)  # a worse local estimate
    assert choose_weights(x, hold, is_cat, (both, p_glob), (rand, p_glob))[0] == 0.0


def test_local_weights_judge_the_estimate_they_blend(monkeypatch):
    """The held-out cells that choose the weights are imputed globally by the same views as the global estimate
    the weights blend (the ensemble), and locally by the local calls' views: the blend is judged as it is used."""
    from icl_diffusion import inference

    seen = []
    original = inference.ensemble_point

    def spy(*args, **kwargs):
        seen.append((tuple(args[8]), int(args[3].sum())))  # (the views, how many cells the call knows)
        return original(*args, **kwargs)

    monkeypatch.setattr(inference, "ensemble_point", spy)
    x, known = make_table(1, N=60)
    _impute(x, known, local_context_rows=10, local_query_rows=5, ensemble=("identity", "yeo_johnson"),
            blend_inputs=False)  # the blend's own calls: test_blend_inputs.py
    global_calls = [cells for views, cells in seen if views == ("identity", "yeo_johnson")]
    assert len(global_calls) == 2 and global_calls[1] < global_calls[0]  # the table, then its key rows less held cells
    assert {views for views, _ in seen} == {("identity", "yeo_johnson"), inference.LOCAL_MEMBERS}


def test_local_weights_judge_the_views_as_weighted(monkeypatch):
    """With the views weighted by cross-validation (``ensemble_folds``), the held-out cells that choose the local
    weights are imputed globally with the same view weights as the global estimate they blend."""
    from icl_diffusion import inference

    used = []
    original = inference.ensemble_point

    def spy(*args, **kwargs):
        network = type(args[0]).__name__ == "Denoiser"  # not the blend's input models (``blend_inputs``)
        if network and tuple(args[8]) == ("identity", "yeo_johnson") and args[2].shape[0] > 1:
            weights = kwargs.get("weights", args[11] if len(args) > 11 else None)
            used.append((int(args[3].sum()), None if weights is None else weights.tolist()))
        return original(*args, **kwargs)

    monkeypatch.setattr(inference, "ensemble_point", spy)
    x, known = make_table(1, N=60)
    _impute(x, known, local_context_rows=10, local_query_rows=5, ensemble=("identity", "yeo_johnson"),
            ensemble_folds=2)
    table_call, held_call = max(used[:-1]), used[-1]  # the table itself: the call that knows the most cells
    assert held_call[0] < table_call[0]  # the key rows less held cells, after the table itself
    assert table_call[1] is not None and held_call[1] == table_call[1]
