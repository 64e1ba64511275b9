"""The noisy-table Gaussian denoiser feature (noisy_feature.py) against the exact posterior, computed per row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from icl_diffusion.diffusion import GaussianDiffusion
from icl_diffusion.gaussian_feature import gaussian_estimate
from icl_diffusion.noisy_feature import denoised_estimates

ABAR = GaussianDiffusion(num_steps=1000).alphas_cumprod


def _gaussian(F, seed):
    g = np.random.default_rng(seed)
    a = g.normal(size=(F, F))
    cov = a @ a.T / F + 0.3 * np.eye(F)
    return g.normal(size=F) * 0.3, cov


def _noisy_table(mean, cov, N, known_rate, t, seed):
    g = np.random.default_rng(seed)
    x0 = g.multivariate_normal(mean, cov, size=N)
    known = g.random(x0.shape) < known_rate
    a = float(ABAR[t])
    x_t = np.sqrt(a) * x0 + np.sqrt(1 - a) * g.normal(size=x0.shape)
    return x0, np.where(known, x0, x_t), known


def _exact(x, known, mean, cov, t):
    """Per row: y = x at known cells, x_t / sqrt(a) at the others with noise variance v; posterior of x0."""
    a = float(ABAR[t])
    v = (1 - a) / a
    y = np.where(known, x, x / np.sqrt(a))
    post_mean, post_var = np.empty_like(x), np.empty_like(x)
    for i in range(x.shape[0]):
        D = np.diag(np.where(known[i], 0.0, v))
        gain = cov @ np.linalg.inv(cov + D)
        post_mean[i] = mean + gain @ (y[i] - mean)
        post_var[i] = np.diag(cov - gain @ cov)
    return post_mean, post_var


def _call(x, known, mean, cov, t, is_cat=None, n_classes=None):
    B = 1
    xt = torch.tensor(x, dtype=torch.float32)[None]
    kt = torch.tensor(known)[None]
    F = x.shape[1]
    is_cat = torch.zeros(B, F, dtype=torch.bool) if is_cat is None else is_cat
    n_classes = torch.zeros(B, F, dtype=torch.long) if n_classes is None else n_classes
    fit = (torch.tensor(mean)[None], torch.tensor(cov)[None])
    noisy = ~kt & ~is_cat[:, None, :]
    return denoised_estimates(xt, kt, noisy, is_cat, n_classes, ABAR, torch.tensor([t]), fit)


def test_posterior_mean_and_variance_are_exact_given_the_fit():
    mean, cov = _gaussian(4, 0)
    for t in (0, 50, 300, 700, 999):
        _, x, known = _noisy_table(mean, cov, 40, 0.5, t, t)
        est, log_var = _call(x, known, mean, cov, t)
        exact_mean, exact_var = _exact(x, known, mean, cov, t)
        np.testing.assert_allclose(est[0].numpy(), exact_mean, atol=2e-4, rtol=1e-4)
        np.testing.assert_allclose(log_var[0].exp().numpy(), np.maximum(exact_var, 1e-4), atol=2e-4, rtol=1e-3)
        # Known cells are returned as they are.
        np.testing.assert_allclose(est[0].numpy()[known], x[known], atol=1e-5)


def test_at_the_last_step_it_is_the_conditional_mean_of_the_known_cells():
    mean, cov = _gaussian(5, 1)
    _, x, known = _noisy_table(mean, cov, 30, 0.6, 999, 1)
    est, _ = _call(x, known, mean, cov, 999)
    ref = gaussian_estimate(torch.tensor(x)[None], torch.tensor(known)[None], torch.zeros(1, 5, dtype=torch.bool),
                            torch.tensor(cov)[None], torch.tensor(mean)[None])
    np.testing.assert_allclose(est[0].numpy(), ref[0].numpy(), atol=1e-3)


def test_without_known_cells_the_gaussian_comes_from_the_noisy_rows():
    """RePaint mode: no cell is known; the moments of 4,000 noisy rows give nearly the exact posterior."""
    mean, cov = _gaussian(3, 2)
    t = 400
    x0, x, known = _noisy_table(mean, cov, 4000, 0.0, t, 2)
    wrong_fit = (np.zeros(3), np.eye(3))  # a fit from no known cell means nothing; it must not be used
    est, _ = _call(x, known, *wrong_fit, t)
    exact_mean, _ = _exact(x, known, mean, cov, t)
    assert np.abs(est[0].numpy() - exact_mean).mean() < 0.05
    # And it beats reading x_t alone, the way a network without the feature starts.
    a = float(ABAR[t])
    assert np.mean((est[0].numpy() - x0) ** 2) < 0.8 * np.mean((x / np.sqrt(a) - x0) ** 2)


def test_known_categories_are_observed_as_their_indicators_and_unknown_ones_marginalized():
    """With a categorical column in the table, the numeric cells get the exact posterior under the whole fit
    given the known cells (a known category as its level indicators) and the noisy cells; an unknown category
    observes nothing, and the categorical column reads 0."""
    t = 200
    a = float(ABAR[t])
    E = 6  # slots [num0, level0, level1, level2, num1, num2]
    fm, fc = _gaussian(E, 3)
    g = np.random.default_rng(3)
    N = 30
    x0 = g.multivariate_normal(fm[[0, 4, 5]], fc[np.ix_([0, 4, 5], [0, 4, 5])], size=N)
    known = g.random(x0.shape) < 0.5
    x = np.where(known, x0, np.sqrt(a) * x0 + np.sqrt(1 - a) * g.normal(size=x0.shape))
    codes = g.integers(0, 3, N).astype(float)
    cat_known = g.random(N) < 0.7
    x_cat = np.concatenate([x[:, :1], codes[:, None], x[:, 1:]], 1)
    known_cat = np.concatenate([known[:, :1], cat_known[:, None], known[:, 1:]], 1)
    est, log_var = _call(x_cat, known_cat, fm, fc, t, torch.tensor([[False, True, False, False]]),
                         torch.tensor([[0, 3, 0, 0]]))
    num = [0, 4, 5]
    for i in range(N):  # the exact posterior, row by row, over the observed slots
        y = np.zeros(E)
        y[num] = np.where(known[i], x[i], x[i] / np.sqrt(a))
        y[1:4] = codes[i] == np.arange(3)
        d = np.zeros(E)
        d[num] = np.where(known[i], 0.0, (1 - a) / a)
        obs = np.array([True, cat_known[i], cat_known[i], cat_known[i], True, True])
        gain = fc[:, obs] @ np.linalg.inv(fc[np.ix_(obs, obs)] + np.diag(d[obs]))
        np.testing.assert_allclose(est[0, i, [0, 2, 3]].numpy(), (fm + gain @ (y - fm)[obs])[num], atol=2e-4,
                                   rtol=1e-4)
        np.testing.assert_allclose(log_var[0, i, [0, 2, 3]].exp().numpy(),
                                   np.maximum(np.diag(fc - gain @ fc[obs])[num], 1e-4), atol=2e-4, rtol=1e-3)
    assert (est[0, :, 1] == 0).all() and (log_var[0, :, 1] == 0).all()


def test_at_the_last_step_a_known_category_informs_it_as_it_does_the_linear_gaussian_feature():
    """Conditional mode at t = T on a table whose numeric column is set by a category (Carseats' sales by shelf
    location): the feature's mean of an unknown numeric cell is the linear-Gaussian feature's conditional mean,
    which reads the known category; marginalizing categories (before session 34) left it at the column mean."""
    from icl_diffusion.gaussian_feature import cell_estimates

    g = np.random.default_rng(4)
    N = 200
    codes = g.integers(0, 3, N)
    value = np.array([-1.5, 0.0, 1.5])[codes] + 0.3 * g.normal(size=N)
    x = torch.tensor(np.stack([codes, value], 1), dtype=torch.float32)[None]
    known = torch.ones(1, N, 2, dtype=torch.bool)
    known[0, ::4, 1] = False  # every fourth value to fill
    is_cat, n_classes = torch.tensor([[True, False]]), torch.tensor([[3, 0]])
    x = torch.where(known, x, torch.randn(1, N, 2))  # x_T: pure noise
    gauss, _, fit = cell_estimates(x, known, is_cat, n_classes, 3, em_iters=10)
    mean, _ = denoised_estimates(x, known, ~known & ~is_cat[:, None, :], is_cat, n_classes, ABAR,
                                 torch.tensor([999]), fit)
    unknown = ~known[0, :, 1]
    np.testing.assert_allclose(mean[0, unknown, 1].numpy(), gauss[0, unknown, 1].numpy(), atol=0.02)
    truth = torch.tensor(value)[unknown]
    assert ((mean[0, unknown, 1] - truth) ** 2).mean() < 0.2 * truth.var()


def test_point_mass_indicators_are_marginalized():
    """A fit with a point mass's indicator slot (``point_mass_feature``: the fit's third element names the masses)
    gives the numeric cells the posterior of its numeric block alone, as with a plain fit of that block."""
    mean, cov = _gaussian(3, 5)
    t = 300
    _, x, known = _noisy_table(mean, cov, 30, 0.5, t, 5)
    # Full fit over [num0, indicator of num0 == mass, num1, num2]: the numeric block is (mean, cov).
    fm, fc = np.zeros(4), np.eye(4) * 0.2
    num = [0, 2, 3]
    fm[num] = mean
    fc[np.ix_(num, num)] = cov
    fc[0, 1] = fc[1, 0] = 0.1  # the indicator covaries with its column: left out
    masses = torch.tensor([[-1.0, float("nan"), float("nan")]], dtype=torch.float64)
    fit = (torch.tensor(fm)[None], torch.tensor(fc)[None], masses)
    xt, kt = torch.tensor(x, dtype=torch.float32)[None], torch.tensor(known)[None]
    is_cat, n_classes = torch.zeros(1, 3, dtype=torch.bool), torch.zeros(1, 3, dtype=torch.long)
    est, _ = denoised_estimates(xt, kt, ~kt, is_cat, n_classes, ABAR, torch.tensor([t]), fit)
    exact_mean, _ = _exact(x, known, mean, cov, t)
    np.testing.assert_allclose(est[0].numpy(), exact_mean, atol=2e-4, rtol=1e-4)


def test_switching_the_feature_on_keeps_a_checkpoints_outputs_and_runs_every_sampler():
    """Zero-initialized input layer: a network with the feature on computes what it computed without it, in
    the one-call point estimate, the conditional sampler and RePaint (known all False inside the network)."""
    from icl_diffusion.inference import impute_standardized
    from icl_diffusion.model import Denoiser, DenoiserConfig

    torch.manual_seed(0)
    base = Denoiser(DenoiserConfig(d_model=32, n_blocks=1, n_heads=2, gaussian_em_iters=2))
    on = Denoiser(DenoiserConfig(d_model=32, n_blocks=1, n_heads=2, gaussian_em_iters=2, noisy_feature=True))
    base_pm = Denoiser(DenoiserConfig(d_model=32, n_blocks=1, n_heads=2, gaussian_em_iters=2, point_mass_feature=True))
    on_pm = Denoiser(DenoiserConfig(d_model=32, n_blocks=1, n_heads=2, gaussian_em_iters=2, noisy_feature=True,
                                    point_mass_feature=True))  # with the point-mass feature too (the shipped config)
    on_pm.load_state_dict(base.state_dict(), strict=False)
    base_pm.load_state_dict(base.state_dict())
    missing, unexpected = on.load_state_dict(base.state_dict(), strict=False)
    assert missing == ["noisy_in.weight", "noisy_in.bias"] and not unexpected
    g = np.random.default_rng(4)
    x = torch.tensor(g.normal(size=(40, 4)), dtype=torch.float32)
    x[:, 3] = torch.tensor(g.integers(0, 3, 40), dtype=torch.float32)
    known = torch.tensor(g.random((40, 4)) > 0.3)
    is_cat, n_classes = torch.tensor([False, False, False, True]), torch.tensor([0, 0, 0, 3])
    diffusion = GaussianDiffusion(num_steps=1000)
    for kwargs in ({}, {"method": "conditional", "n_steps": 3, "n_samples": 2},
                   {"method": "repaint", "n_steps": 4, "jump_length": 2, "jump_n_sample": 2},
                   {"method": "conditional", "n_steps": 3, "max_context_rows": 16, "chunk_rows": 10}):
        outs = [impute_standardized(m, diffusion, x, known, is_cat, n_classes,
                                    generator=torch.Generator().manual_seed(1), **kwargs)
                for m in (base, on, base_pm, on_pm)]
        torch.testing.assert_close(outs[0], outs[1])
        torch.testing.assert_close(outs[2], outs[3])


def test_the_numeric_skip_starts_at_zero_and_carries_the_posterior_mean_to_the_output():
    """``numeric_skip``: zero-initialized, a network with it on computes what it computed without it (every
    sampler); with its gate at 1 and the numeric head silenced, the numeric output of an unknown cell is the
    noisy-table Gaussian denoiser's posterior mean; the gate learns (it gets a gradient); it needs the feature."""
    from icl_diffusion.inference import impute_standardized
    from icl_diffusion.model import Denoiser, DenoiserConfig

    torch.manual_seed(0)
    cfg = {"d_model": 32, "n_blocks": 1, "n_heads": 2, "gaussian_em_iters": 2, "noisy_feature": True}
    base, on = Denoiser(DenoiserConfig(**cfg)), Denoiser(DenoiserConfig(**cfg, numeric_skip=True))
    missing, unexpected = on.load_state_dict(base.state_dict(), strict=False)
    assert missing == ["skip_gate.weight", "skip_gate.bias"] and not unexpected
    g = np.random.default_rng(4)
    x = torch.tensor(g.normal(size=(40, 3)), dtype=torch.float32)
    known = torch.tensor(g.random((40, 3)) > 0.3)
    is_cat, n_classes = torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.long)
    diffusion = GaussianDiffusion(num_steps=1000)
    for kwargs in ({}, {"method": "repaint", "n_steps": 4, "jump_length": 2, "jump_n_sample": 2}):
        outs = [impute_standardized(m, diffusion, x, known, is_cat, n_classes,
                                    generator=torch.Generator().manual_seed(1), **kwargs) for m in (base, on)]
        torch.testing.assert_close(outs[0], outs[1])
    with torch.no_grad():
        on.num_head.weight.zero_()
        on.num_head.bias.zero_()
        on.skip_gate.bias.fill_(1.0)
    t = torch.tensor([300])
    unknown = torch.zeros_like(known)[None]  # RePaint's call: nothing known
    out = on(x[None], t, unknown, is_cat[None], n_classes[None])[0]
    fit = on.fit_gaussian(x[None], unknown, is_cat[None], n_classes[None])
    mean, _ = denoised_estimates(x[None], unknown, ~unknown, is_cat[None], n_classes[None], on.alphas_cumprod, t, fit)
    torch.testing.assert_close(out, mean)
    on.zero_grad()
    on(x[None], t, unknown, is_cat[None], n_classes[None])[0].square().sum().backward()
    assert float(on.skip_gate.weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="numeric_skip needs noisy_feature"):
        Denoiser(DenoiserConfig(d_model=32, n_blocks=1, n_heads=2, numeric_skip=True))
