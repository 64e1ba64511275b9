"""GaussianDiffusion: schedules, parameterizations, respacing and the posterior q(x_{i-1} | x_i, x0)."""

from __future__ import annotations

import math

import pytest
import torch

from icl_diffusion.diffusion import MASK, GaussianDiffusion


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("num_steps", [10, 100, 1000])
def test_schedule_monotone_and_in_unit_interval(schedule, num_steps):
    d = GaussianDiffusion(num_steps, schedule)
    abar = d.alphas_cumprod
    assert abar.shape == (num_steps,)
    assert abar.dtype == torch.float32
    assert bool((abar > 0).all()) and bool((abar <= 1).all())
    assert bool((abar[1:] < abar[:-1]).all()), "alphas_cumprod must decrease strictly"
    assert bool((d._betas > 0).all()) and bool((d._betas <= 0.999 + 1e-12).all())
    assert float(abar[0]) > 0.95  # t = 0 is nearly clean


def test_cosine_ends_near_zero_and_linear_keeps_its_end_point():
    assert float(GaussianDiffusion(1000, "cosine").alphas_cumprod[-1]) < 1e-6
    assert float(GaussianDiffusion(50, "cosine").alphas_cumprod[-1]) < 1e-3
    lin_1000 = float(GaussianDiffusion(1000, "linear").alphas_cumprod[-1])
    lin_100 = float(GaussianDiffusion(100, "linear").alphas_cumprod[-1])
    assert lin_1000 < 1e-4
    # Betas scaled with 1000 / num_steps: the integrated noise, hence the end point, is about the same.
    assert abs(math.log(lin_100) - math.log(lin_1000)) < 1.0


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="schedule"):
        GaussianDiffusion(schedule="quadratic")
    with pytest.raises(ValueError, match="prediction"):
        GaussianDiffusion(prediction="score")


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_predict_x0_eps_inverts_the_target(prediction, schedule):
    d = GaussianDiffusion(1000, schedule, prediction)
    g = torch.Generator().manual_seed(0)
    # The eps parameterization divides by sqrt(abar), clamped at 1e-4: stay where sqrt(abar) > 1e-2 for it.
    top = 999 if prediction != "eps" else int((d.alphas_cumprod.sqrt() > 1e-2).nonzero().max())
    for i in [0, 1, 10, 250, 500, 900, top]:
        x0 = torch.randn(3, 5, 4, generator=g)
        eps = torch.randn(3, 5, 4, generator=g)
        x_t = d.q_sample(x0, i, eps)
        x0_hat, eps_hat = d.predict_x0_eps(d.target(x0, eps, i), x_t, i)
        abar = float(d.alphas_cumprod[i])
        # float32: x0 is recovered to ~1e-7 / sqrt(abar), eps to ~1e-7 / sqrt(1 - abar)
        tol_x0 = 1e-5 + 1e-6 / math.sqrt(abar)
        tol_eps = 1e-5 + 1e-6 / math.sqrt(1 - abar)
        torch.testing.assert_close(x0_hat, x0, atol=tol_x0, rtol=0)
        torch.testing.assert_close(eps_hat, eps, atol=tol_eps, rtol=0)


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_per_sample_timesteps_match_scalar_timesteps(prediction):
    d = GaussianDiffusion(1000, "cosine", prediction)
    g = torch.Generator().manual_seed(1)
    i = torch.tensor([3, 400, 800])
    x0, eps = torch.randn(3, 6, 2, generator=g), torch.randn(3, 6, 2, generator=g)
    x_t = d.q_sample(x0, i, eps)
    out = d.target(x0, eps, i)
    x0_hat, eps_hat = d.predict_x0_eps(out, x_t, i)
    for b in range(3):
        ib = int(i[b])
        torch.testing.assert_close(x_t[b : b + 1], d.q_sample(x0[b : b + 1], ib, eps[b : b + 1]))
        ref = d.predict_x0_eps(out[b : b + 1], x_t[b : b + 1], ib)
        torch.testing.assert_close(x0_hat[b : b + 1], ref[0])
        torch.testing.assert_close(eps_hat[b : b + 1], ref[1])


@pytest.mark.parametrize("n_steps", [1, 2, 3, 7, 50, 250, 999, 1000, 5000])
def test_respaced_chain_keeps_original_indices_and_marginals(n_steps):
    d = GaussianDiffusion(1000, "cosine", "v")
    r = d.respaced(n_steps)
    ts = r.timesteps
    assert r.n_chain == len(ts) == min(n_steps, 1000)
    assert ts == sorted(set(ts)), "ascending, no duplicates"
    assert ts[-1] == 999, "the chain must start denoising from the original t = T-1"
    assert all(0 <= t < 1000 for t in ts)
    if n_steps > 1:
        assert ts[0] == 0
    assert [r.original_t(i) for i in range(r.n_chain)] == ts
    assert r.prediction == "v" and r.num_steps == 1000 and r.schedule == "cosine"
    # The network sees original t, so the respaced chain's abar is the original abar at those t ...
    torch.testing.assert_close(r.alphas_cumprod, d.alphas_cumprod)  # the 1-D schedule stays the original
    torch.testing.assert_close(r._abar.float(), d.alphas_cumprod[ts])
    # ... and its re-derived betas compose back to the same marginals.
    torch.testing.assert_close(torch.cumprod(1 - r._betas, 0), r._abar)
    assert bool((r._betas > 0).all()) and bool((r._betas <= 1).all())
    x0, eps = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    for i in {0, r.n_chain // 2, r.n_chain - 1}:
        torch.testing.assert_close(r.q_sample(x0, i, eps), d.q_sample(x0, ts[i], eps))


def test_respaced_one_step_is_the_point_estimate_at_t_max():
    # Regression: linspace(0, T-1, 1) is [0], so n_steps=1 used to visit t = 0 (abar ~ 1) with pure noise
    # instead of t = T-1, where DESIGN.md puts the one-call point estimate.
    r = GaussianDiffusion(1000).respaced(1)
    assert r.timesteps == [999]
    assert float(r._abar[0]) == pytest.approx(float(GaussianDiffusion(1000).alphas_cumprod[-1]))
    assert float(r._abar_prev[0]) == 1.0


@pytest.mark.parametrize("n_steps", [1000, 20])
def test_q_posterior_matches_closed_form_gaussian(n_steps):
    # Given x0, (x_{i-1}, x_i) is jointly Gaussian: x_{i-1} = sqrt(abar') x0 + sqrt(1-abar') e1 and
    # x_i = sqrt(1-beta) x_{i-1} + sqrt(beta) e2. Condition x_{i-1} on x_i by the Gaussian formula (float64).
    d = GaussianDiffusion(1000, "cosine").respaced(n_steps)
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(4, 3, 2, generator=g, dtype=torch.float64)
    x_t = torch.randn(4, 3, 2, generator=g, dtype=torch.float64)
    for i in [1, 2, d.n_chain // 2, d.n_chain - 1]:
        abar, abar_prev, beta = float(d._abar[i]), float(d._abar_prev[i]), float(d._betas[i])
        var_prev = 1 - abar_prev
        cov = math.sqrt(1 - beta) * var_prev
        var_t = (1 - beta) * var_prev + beta
        assert var_t == pytest.approx(1 - abar)
        mean_ref = math.sqrt(abar_prev) * x0 + cov / var_t * (x_t - math.sqrt(abar) * x0)
        var_ref = var_prev - cov**2 / var_t
        mean, var = d.q_posterior_mean_variance(x0, x_t, i)
        torch.testing.assert_close(mean, mean_ref, atol=1e-10, rtol=1e-8)
        assert var == pytest.approx(var_ref, rel=1e-8, abs=1e-14)
    # At i = 0 the posterior is x0 itself.
    mean, var = d.q_posterior_mean_variance(x0, x_t, 0)
    torch.testing.assert_close(mean, x0)
    assert var == 0.0


def test_q_posterior_monte_carlo():
    # Draw (x_{i-1}, x_i) from the forward chain for one x0 and regress x_{i-1} on x_i: slope, intercept,
    # residual variance must be those of q_posterior_mean_variance.
    d = GaussianDiffusion(1000, "cosine").respaced(10)
    g = torch.Generator().manual_seed(3)
    i, x0, n = 5, 0.7, 400_000
    abar_prev = float(d._abar_prev[i])
    e1 = torch.randn(n, generator=g, dtype=torch.float64)
    x_prev = math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev) * e1
    x_t = d.q_step_up(x_prev, i, torch.randn(n, generator=g, dtype=torch.float64))
    slope = float(((x_t - x_t.mean()) * (x_prev - x_prev.mean())).mean() / x_t.var())
    intercept = float(x_prev.mean() - slope * x_t.mean())
    resid = float((x_prev - intercept - slope * x_t).var())
    zero = torch.zeros(1, dtype=torch.float64)
    m0, var = d.q_posterior_mean_variance(torch.full_like(zero, x0), zero, i)
    m1, _ = d.q_posterior_mean_variance(torch.full_like(zero, x0), zero + 1, i)
    assert slope == pytest.approx(float(m1 - m0), abs=0.01)
    assert intercept == pytest.approx(float(m0), abs=0.01)
    assert resid == pytest.approx(var, rel=0.02)


def test_p_mean_variance_and_ddim_with_exact_x0():
    d = GaussianDiffusion(1000, "cosine", "x0").respaced(25)
    g = torch.Generator().manual_seed(4)
    x0, eps = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)
    for i in [1, 12, 24]:
        x_t = d.q_sample(x0, i, eps)
        mean, var, x0_hat = d.p_mean_variance(x0, x_t, i)
        assert torch.equal(x0_hat, x0)
        ref_mean, ref_var = d.q_posterior_mean_variance(x0, x_t, i)
        assert torch.equal(mean, ref_mean) and var == ref_var
        # variance_mix: beta_tilde at 0, beta at 1, their geometric mean halfway; the mean never changes.
        beta = 1 - float(d._abar[i] / d._abar_prev[i])
        for mix, expected in [(1.0, beta), (0.5, (ref_var * beta) ** 0.5)]:
            mixed_mean, mixed_var, _ = d.p_mean_variance(x0, x_t, i, variance_mix=mix)
            assert torch.equal(mixed_mean, ref_mean) and mixed_var == pytest.approx(expected, rel=1e-9)
        assert ref_var < (ref_var * beta) ** 0.5 < beta
        _, _, clipped = d.p_mean_variance(x0 * 10, x_t, i, clip=1.0)
        assert float(clipped.abs().max()) <= 1.0
        # DDIM (eta = 0) with the exact x0 and eps lands on the same noise draw one level lower.
        torch.testing.assert_close(d.ddim_step(x0, eps, i), d.q_sample(x0, i - 1, eps), atol=1e-5, rtol=0)
    torch.testing.assert_close(d.ddim_step(x0, eps, 0), x0)


def test_q_step_up_moves_the_marginal_one_level():
    d = GaussianDiffusion(1000, "cosine").respaced(10)
    for i in range(1, 10):
        beta = float(d._betas[i])
        # sqrt(1-beta) scales the signal from sqrt(abar_{i-1}) to sqrt(abar_i); the noise fills to 1 - abar_i.
        assert (1 - beta) * float(d._abar[i - 1]) == pytest.approx(float(d._abar[i]), rel=1e-10)
        x = torch.ones(3)
        up = d.q_step_up(x, i, torch.zeros(3))
        torch.testing.assert_close(up, torch.full((3,), math.sqrt(1 - beta)))


def test_categorical_absorbing_process():
    d = GaussianDiffusion(1000, "cosine").respaced(20)
    g = torch.Generator().manual_seed(5)
    codes = torch.randint(0, 4, (200_000,), generator=g).float()
    for i in [0, 5, 10, 19]:
        noisy = d.q_sample_categorical(codes, i, g)
        masked = noisy == MASK
        assert float(masked.float().mean()) == pytest.approx(1 - float(d._abar[i]), abs=5e-3)
        assert torch.equal(noisy[~masked], codes[~masked]), "unmasked codes are unchanged"
    # Reveal probability: P(masked at i-1 | masked at i) = (1 - abar_{i-1}) / (1 - abar_i), except into the
    # original t = 0 (position 0 here), where every cell is revealed (its ~1e-4 left masked cost a network call).
    for i in [2, 10, 19]:
        stay = (1 - float(d._abar_prev[i])) / (1 - float(d._abar[i]))
        assert d.unmask_probability(i) == pytest.approx(1 - stay, rel=1e-9)
    assert d.original_t(0) == 0 and d.unmask_probability(1) == d.unmask_probability(0) == 1.0
    # Jump back: an unmasked code is re-masked with probability beta_i.
    up = d.q_step_up_categorical(codes, 10, g)
    assert float((up == MASK).float().mean()) == pytest.approx(float(d._betas[10]), abs=5e-3)


def test_eps_prediction_recovers_x0_at_the_last_step():
    # Regression: sqrt(abar) was floored at 1e-4 while the cosine schedule reaches ~5e-5 at t = T-1, so an
    # exact eps-predictor's one-call point estimate came out at half the right size.
    diffusion = GaussianDiffusion(prediction="eps")
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 8, 3, generator=g), torch.randn(4, 8, 3, generator=g)
    t = diffusion.num_steps - 1
    x_t = diffusion.q_sample(x0, t, eps)
    x0_hat, _ = diffusion.predict_x0_eps(eps, x_t, t)
    torch.testing.assert_close(x0_hat, x0, atol=2e-2, rtol=0)


def test_schedule_reaches_a_device_once():
    """Per-sample timesteps index a float32 copy of the schedule made once per device (indexing the float64
    host tensor copied it to the device, a blocking transfer, at every call): same values as before."""
    d = GaussianDiffusion(100)
    x0, t = torch.randn(4, 3, 2), torch.tensor([0, 5, 50, 99])
    first = d.q_sample(x0, t, torch.zeros_like(x0))
    table = d._on_device[("_abar", x0.device)]
    d.q_sample_categorical(x0, t)
    assert d._on_device[("_abar", x0.device)] is table and len(d._on_device) == 1
    assert torch.equal(first, d._abar[t].float().sqrt().view(-1, 1, 1) * x0)
