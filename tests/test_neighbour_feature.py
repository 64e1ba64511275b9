"""The nearest-rows input feature (icl_diffusion/neighbour_feature.py) against a direct loop, and its
invariants: key rows only, permutation equivariance, query rows against cached key rows."""

import math

import pytest
import torch

from icl_diffusion.model import Denoiser, DenoiserConfig
from icl_diffusion.neighbour_feature import NEIGHBOURS, neighbour_estimates


def _table(seed=0, N=40, F=5, p_known=0.7):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, N, F, generator=g)
    x[..., 1] = (x[..., 0] > 0).float() + (x[..., 2] > 1).float()  # a 3-level categorical column
    is_cat = torch.zeros(1, F, dtype=torch.bool)
    is_cat[0, 1] = True
    n_classes = torch.zeros(1, F, dtype=torch.long)
    n_classes[0, 1] = 3
    known = torch.rand(1, N, F, generator=g) < p_known
    return x, known, is_cat, n_classes


def _direct(x, known, is_cat, i, j, nearest_only=False):
    """The documented definition, one cell at a time."""
    N, F = x.shape
    d = torch.full((N,), math.inf)
    for r in range(N):
        both = known[i] & known[r]
        if r == i or not both.any():
            continue
        diff = torch.where(is_cat, 2.0 * (x[i] != x[r]).float(), (x[i] - x[r]) ** 2)
        d[r] = diff[both].sum() / both.sum()
    nearest = d.sort().values[:NEIGHBOURS]
    nearest = nearest[torch.isfinite(nearest)]
    out = []
    for tau in (nearest.mean().clamp(min=1e-4), nearest[0].clamp(min=1e-4)):  # smooth, sharp
        w = torch.exp(-(d - d.min()) / tau) * known[:, j]
        if nearest_only:  # the NEIGHBOURS nearest rows only
            w = w * (d <= nearest[-1])
        if is_cat[j]:
            out.append(torch.stack([(w * (x[:, j] == c)).sum() / w.sum() for c in range(3)]))
        else:
            out.append((w * torch.where(known[:, j], x[:, j], 0.0)).sum() / w.sum())
    return out, nearest[0].clamp(min=1e-4)


@pytest.mark.parametrize("nearest_only", [False, True])
def test_estimates_match_the_definition(nearest_only):
    x, known, is_cat, n_classes = _table()
    kernel = "nearest" if nearest_only else "all"
    num, sharp, probs, log_dist = neighbour_estimates(x, known, is_cat, n_classes, 3, kernel=kernel)
    for i, j in [(0, 0), (3, 2), (7, 4), (11, 1), (20, 1)]:
        (ref, ref_sharp), dist = _direct(x[0], known[0], is_cat[0], i, j, nearest_only)
        assert torch.allclose(log_dist[0, i], dist.log(), atol=1e-4)
        if known[0, i, j]:
            continue
        if is_cat[0, j]:
            assert torch.allclose(probs[0, i, j], ref, atol=1e-4), (i, j, probs[0, i, j], ref)
        else:
            assert torch.allclose(num[0, i, j], ref, atol=1e-4), (i, j, num[0, i, j], ref)
            assert torch.allclose(sharp[0, i, j], ref_sharp, atol=1e-4), (i, j, sharp[0, i, j], ref_sharp)
    assert torch.equal(num[0][known[0] & ~is_cat[0]], x[0][known[0] & ~is_cat[0]])  # known cells as they are
    assert (probs[0, :, 0] == 0).all()  # numeric columns get no levels


def test_near_duplicate_rows_give_their_value_where_a_linear_fit_cannot():
    g = torch.Generator().manual_seed(1)
    units = torch.randn(10, 4, generator=g) * 2
    x = (units.repeat(6, 1) + 0.01 * torch.randn(60, 4, generator=g))[None]
    x[..., 3] = torch.sin(3 * x[..., 0]) * x[..., 1]  # nonlinear in the others, the same within a unit
    known = torch.ones_like(x, dtype=torch.bool)
    known[0, :10, 3] = False
    smooth, sharp, _, log_dist = neighbour_estimates(x, known, torch.zeros(1, 4, dtype=torch.bool),
                                                     torch.zeros(1, 4, dtype=torch.long), 2)
    assert (sharp[0, :10, 3] - x[0, :10, 3]).abs().max() < 0.2
    assert (smooth[0, :10, 3] - x[0, :10, 3]).abs().max() > 0.4  # the smooth bandwidth blurs units together
    assert log_dist[0].max() < math.log(0.01)


def test_only_key_rows_inform_and_query_rows_against_cached_keys_match():
    x, known, is_cat, n_classes = _table(seed=2, N=30)
    key_mask = torch.zeros(1, 30, dtype=torch.bool)
    key_mask[0, :20] = True
    full = neighbour_estimates(x, known, is_cat, n_classes, 3, key_mask=key_mask)
    changed = x.clone()
    changed[0, 20:25] += 5.0  # other non-key rows change: row 25's estimate must not
    again = neighbour_estimates(changed, known, is_cat, n_classes, 3, key_mask=key_mask)
    for a, b in zip(full, again):
        assert torch.allclose(a[0, 25:], b[0, 25:])
    query = neighbour_estimates(x[:, 20:], known[:, 20:], is_cat, n_classes, 3, keys=(x[:, :20], known[:, :20]))
    for a, b in zip(full, query):
        assert torch.allclose(a[0, 20:], b[0], atol=1e-5)


def test_rows_and_columns_permute_with_the_table():
    x, known, is_cat, n_classes = _table(seed=3)
    rows, cols = torch.randperm(40), torch.tensor([2, 0, 4, 1, 3])
    base = neighbour_estimates(x, known, is_cat, n_classes, 3)
    perm = neighbour_estimates(x[:, rows][:, :, cols], known[:, rows][:, :, cols], is_cat[:, cols],
                               n_classes[:, cols], 3)
    assert torch.allclose(base[0][:, rows][:, :, cols], perm[0], atol=1e-5)
    assert torch.allclose(base[1][:, rows][:, :, cols], perm[1], atol=1e-5)
    assert torch.allclose(base[2][:, rows][:, :, cols], perm[2], atol=1e-5)
    assert torch.allclose(base[3][:, rows], perm[3], atol=1e-5)


def test_switching_the_feature_on_keeps_a_trained_networks_outputs_until_it_trains():
    torch.manual_seed(0)
    off = Denoiser(DenoiserConfig(d_model=32, n_blocks=1))
    on = Denoiser(DenoiserConfig(d_model=32, n_blocks=1, neighbour_feature=True))
    missing, unexpected = on.load_state_dict(off.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("neighbour") for k in missing)
    x, known, is_cat, n_classes = _table(seed=4)
    x = torch.where(is_cat[:, None, :] & ~known, torch.full_like(x, -1.0), x)  # MASK absorbed categories
    t = torch.tensor([500])
    for a, b in zip(off(x, t, known, is_cat, n_classes), on(x, t, known, is_cat, n_classes)):
        assert torch.equal(a, b)
    with torch.no_grad():
        on.neighbour_in.weight.fill_(0.1)
    assert not torch.equal(off(x, t, known, is_cat, n_classes)[0], on(x, t, known, is_cat, n_classes)[0])


def test_the_nearest_rows_kernel_ignores_the_far_crowd():
    """A row with 5 near-duplicates (value 1) among 200 far rows (value 0) in a noisy column: the whole-table
    kernel lets the crowd pull the smooth estimate toward 0; the nearest rows alone give ~1. The denoiser reads
    it by its ``neighbour_kernel`` setting."""
    g = torch.Generator().manual_seed(0)
    far = torch.randn(200, 4, generator=g) * 1.0 + 3.0
    near = torch.zeros(6, 4) + 0.3 * torch.randn(6, 4, generator=g)
    x = torch.cat([near, far])[None]
    x[0, :6, 3], x[0, 6:, 3] = 1.0, 0.0
    known = torch.ones_like(x, dtype=torch.bool)
    known[0, 0, 3] = False
    is_cat, n_classes = torch.zeros(1, 4, dtype=torch.bool), torch.zeros(1, 4, dtype=torch.long)
    whole = neighbour_estimates(x, known, is_cat, n_classes, 2)[0][0, 0, 3]
    nearest = neighbour_estimates(x, known, is_cat, n_classes, 2, kernel="nearest")[0][0, 0, 3]
    assert nearest > 0.75 and whole < 0.6, (float(whole), float(nearest))  # 0.86 and 0.48
    with pytest.raises(ValueError, match="neighbour_kernel"):
        Denoiser(DenoiserConfig(neighbour_feature=True, neighbour_kernel="knn"))
