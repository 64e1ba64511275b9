"""The trees' estimate as a network input (``DenoiserConfig.tree_feature``, ``tree_regression.feature_estimates``):
it carries what the Gaussian estimate misses, switching it on keeps a checkpoint's outputs, and the paths inference
takes (cached key rows, a sampler's copies of a table, padding) see the same trees as one pass over the table."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from icl_diffusion import DiffusionImputer
from icl_diffusion.checkpoint import load_checkpoint
from icl_diffusion.diffusion import GaussianDiffusion
from icl_diffusion.gaussian_feature import cell_estimates
from icl_diffusion.model import Denoiser, DenoiserConfig
from icl_diffusion.training import LossConfig, training_loss
from icl_diffusion.tree_regression import feature_estimates

pytestmark = pytest.mark.usefixtures("single_thread")


def _step_table(n: int = 300, seed: int = 0):
    """Column 2 a step function of column 0 (+-1 around 0), column 1 noise; 30% of column 2 unknown."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, n, 3, generator=g)
    x[..., 2] = torch.sign(x[..., 0]) + 0.05 * x[..., 2]
    known = torch.ones(1, n, 3, dtype=torch.bool)
    known[0, :, 2] = torch.rand(n, generator=g) > 0.3
    return x, known, torch.zeros(1, 3, dtype=torch.bool)


def _model(seed: int = 0, tree_weights: bool = True) -> Denoiser:
    torch.manual_seed(seed)
    model = Denoiser(DenoiserConfig(d_model=32, n_blocks=2, gaussian_em_iters=3, tree_feature=True)).eval()
    if tree_weights:  # the input layers start at zero: give them weights, or no test here could see them
        for p in (*model.tree_in.parameters(), *model.tree_gate.parameters()):
            torch.nn.init.normal_(p, std=0.5)
    return model


def test_the_trees_read_a_step_the_gaussian_estimate_cannot():
    x, known, is_cat = _step_table()
    n_classes = torch.zeros(1, 3, dtype=torch.long)
    gauss = cell_estimates(x, known, is_cat, n_classes, 2, None, None, 10, False)[0]
    filled = torch.where(known, x, gauss)
    estimates, fitted = feature_estimates(filled, known, is_cat)
    hidden = ~known
    assert torch.equal(fitted, hidden)  # every unknown numeric cell, no other
    assert torch.equal(estimates[known], x[known])  # known cells as they are
    trees = (estimates - x)[hidden].square().mean()
    linear = (gauss - x)[hidden].square().mean()
    assert trees < 0.2 * linear, (float(trees), float(linear))


def test_switching_it_on_keeps_the_shipped_model_s_imputations():
    shipped = load_checkpoint("checkpoints/icl_diffusion_small.safetensors")
    model = Denoiser(dataclasses.replace(shipped.model.cfg, tree_feature=True)).eval()
    missing, unexpected = model.load_state_dict(shipped.model.state_dict(), strict=False)
    assert sorted(missing) == ["tree_gate.bias", "tree_gate.weight", "tree_in.bias", "tree_in.weight"]
    assert not unexpected
    with_trees = dataclasses.replace(shipped, model=model)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    x[:, 3] = np.abs(x[:, 0]) + 0.1 * x[:, 3]
    x[rng.random(x.shape) < 0.2] = np.nan
    a = DiffusionImputer(checkpoint=shipped, random_state=0).fit_transform(x)
    b = DiffusionImputer(checkpoint=with_trees, random_state=0).fit_transform(x)
    np.testing.assert_array_equal(a, b)


@torch.no_grad()
def test_cached_key_rows_and_a_sampler_s_copies_see_the_trees_of_one_pass():
    model = _model()
    x, known, is_cat = _step_table(n=80)
    n_classes = torch.zeros(1, 3, dtype=torch.long)
    t = torch.tensor([999])
    x_in = torch.where(known, x, 0.0)
    K = 50  # rows 0..49 are key rows, 50..79 query rows
    key_mask = torch.zeros(1, 80, dtype=torch.bool)
    key_mask[:, :K] = True
    num, _ = model(x_in, t, known, is_cat, n_classes, key_mask=key_mask)
    k_num, _, ctx = model(x_in[:, :K], t, known[:, :K], is_cat, n_classes, return_context=True)
    torch.testing.assert_close(k_num, num[:, :K], atol=1e-5, rtol=0)
    S = 3  # the sampler's S copies of the query rows against one cached copy of the key rows
    q_num, _ = model(x_in[:, K:].expand(S, -1, -1), t.expand(S), known[:, K:].expand(S, -1, -1),
                     is_cat.expand(S, -1), n_classes.expand(S, -1), context=ctx)
    for s in range(S):
        torch.testing.assert_close(q_num[s : s + 1], num[:, K:], atol=1e-5, rtol=0)
    # Per-sample key rows (no shared cache): copies of the same query rows against different key rows differ
    key_values, key_seen = ctx["trees"]
    keys = (torch.cat([key_values, -key_values]), key_seen.expand(2, -1, -1))
    own = feature_estimates(x_in[:, K:].expand(2, -1, -1), known[:, K:].expand(2, -1, -1), is_cat.expand(2, -1),
                            keys=keys)[0]
    assert not torch.equal(own[0], own[1])
    off = _model(tree_weights=False)
    off.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("tree_")}, strict=False)
    changed = (off(x_in, t, known, is_cat, n_classes, key_mask=key_mask)[0] - num).abs()
    assert float(changed[~known].min()) > 0  # the trees reach every unknown cell


@torch.no_grad()
def test_padding_and_a_table_that_knows_nothing_get_no_trees():
    x, known, is_cat = _step_table(n=60)
    n_classes = torch.zeros(1, 3, dtype=torch.long)
    gauss = cell_estimates(x, known, is_cat, n_classes, 2, None, None, 10, False)[0]
    filled = torch.where(known, x, gauss)
    # A padded column (no row knows it, its cells NaN) and padded rows (not key rows, NaN)
    padded = torch.cat([filled, torch.full((1, 60, 1), float("nan"))], 2)
    padded = torch.cat([padded, torch.full((1, 20, 4), float("nan"))], 1)
    seen = torch.zeros(1, 80, 4, dtype=torch.bool)
    seen[:, :60, :3] = known
    key_mask = torch.zeros(1, 80, dtype=torch.bool)
    key_mask[:, :60] = True
    estimates, fitted = feature_estimates(padded, seen, torch.zeros(1, 4, dtype=torch.bool), key_mask)
    plain, plain_fitted = feature_estimates(filled, known, is_cat)
    torch.testing.assert_close(estimates[:, :60, :3], plain)
    assert torch.equal(fitted[:, :60, :3], plain_fitted) and not bool(fitted[:, :, 3].any())
    seen[:, 60:, :3] = True  # padded rows flagged known (the model's padding test does this too): still not read
    flagged = feature_estimates(padded, seen, torch.zeros(1, 4, dtype=torch.bool), key_mask)[0]
    torch.testing.assert_close(flagged[:, :60, :3], plain)
    nothing = torch.zeros_like(known)  # an unconditional table: no key row knows a cell
    assert not bool(feature_estimates(torch.zeros_like(x), nothing, is_cat)[1].any())


def test_training_reaches_the_tree_layers_through_conditional_tables_only():
    model = _model(tree_weights=False).train()
    x, known, is_cat = _step_table(n=64)
    batch = {"x": x.expand(2, -1, -1).clone(), "known": known.expand(2, -1, -1).clone(),
             "is_cat": is_cat.expand(2, -1).clone(), "n_classes": torch.zeros(2, 3, dtype=torch.long)}
    diffusion = GaussianDiffusion(num_steps=1000)
    for p_uncond, reached in ((0.0, True), (1.0, False)):
        model.zero_grad()
        loss, _ = training_loss(model, diffusion, batch, LossConfig(p_uncond=p_uncond),
                                torch.Generator().manual_seed(0))
        loss.backward()
        grad = model.tree_gate.weight.grad
        assert (grad is not None and float(grad.abs().sum()) > 0) == reached
