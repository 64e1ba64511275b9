"""The linear-Gaussian family and its closed-form conditional (the oracle for validation RMSE)."""

from __future__ import annotations

import numpy as np
import torch

from priors import PriorConfig, conditional_gaussian, sample_batch


def _gaussian_batch(seed: int, batch_size: int, n_rows: int, n_features: int) -> dict:
    return sample_batch(
        PriorConfig(),
        torch.Generator().manual_seed(seed),
        batch_size=batch_size,
        n_rows=n_rows,
        n_features=n_features,
        family="gaussian",
        mask_kind="mcar",
    )


def test_rows_follow_the_returned_distribution() -> None:
    batch = _gaussian_batch(0, batch_size=3, n_rows=20000, n_features=4)
    x = batch["x"].double()
    emp_mean = x.mean(1)
    emp_cov = torch.einsum("bni,bnj->bij", x - emp_mean.unsqueeze(1), x - emp_mean.unsqueeze(1)) / (
        x.shape[1] - 1
    )
    cov = batch["cov"].double()
    std = torch.diagonal(cov, dim1=1, dim2=2).sqrt()
    assert ((emp_mean - batch["mean"]).abs() / std).max() < 0.05
    assert ((emp_cov - cov).abs() / (std.unsqueeze(-1) * std.unsqueeze(-2))).max() < 0.05


def test_covariances_are_strongly_correlated_and_well_conditioned() -> None:
    batch = _gaussian_batch(1, batch_size=64, n_rows=8, n_features=8)
    cov = batch["cov"].double()
    d = torch.diagonal(cov, dim1=1, dim2=2).rsqrt()
    corr = cov * d.unsqueeze(-1) * d.unsqueeze(-2)
    off = corr - torch.eye(8, dtype=torch.float64)
    assert off.abs().amax((1, 2)).median() > 0.7  # a model imputing the column mean must lose clearly
    eig = torch.linalg.eigvalsh(corr)
    assert (eig[:, 0] > 0).all() and (eig[:, -1] / eig[:, 0]).max() < 1e5


def test_conditional_matches_monte_carlo_regression() -> None:
    """E[x0 | x1, x2] is linear: a least-squares fit on many exact draws must reproduce it."""
    batch = _gaussian_batch(2, batch_size=1, n_rows=16, n_features=3)
    mean, cov = batch["mean"][0].double(), batch["cov"][0].double()
    rng = np.random.default_rng(0)
    draws = rng.multivariate_normal(mean.numpy(), cov.numpy(), size=200_000)
    design = np.c_[np.ones(len(draws)), draws[:, 1:]]
    coef, *_ = np.linalg.lstsq(design, draws[:, 0], rcond=None)
    resid_var = np.var(draws[:, 0] - design @ coef)

    x = batch["x"][0].double()
    known = torch.ones_like(x, dtype=torch.bool)
    known[:, 0] = False
    cond_mean, cond_var = conditional_gaussian(mean, cov, torch.where(known, x, torch.nan), known)
    mc_mean = np.c_[np.ones(len(x)), x[:, 1:].numpy()] @ coef
    std0 = cov[0, 0].sqrt().item()
    assert np.abs(cond_mean[:, 0].numpy() - mc_mean).max() < 0.02 * std0
    assert np.allclose(cond_var[:, 0].numpy(), resid_var, rtol=0.03)
    assert torch.equal(cond_mean[:, 1:], x[:, 1:]) and (cond_var[:, 1:] == 0).all()


def test_conditional_matches_monte_carlo_binning() -> None:
    """E[x1 | x0 = v] from the mean of draws whose x0 falls in a narrow bin around v."""
    batch = _gaussian_batch(3, batch_size=1, n_rows=4, n_features=2)
    mean, cov = batch["mean"][0].double(), batch["cov"][0].double()
    draws = np.random.default_rng(1).multivariate_normal(mean.numpy(), cov.numpy(), size=400_000)
    std0, std1 = cov[0, 0].sqrt().item(), cov[1, 1].sqrt().item()
    for v in (mean[0].item() - std0, mean[0].item() + 0.5 * std0):
        in_bin = np.abs(draws[:, 0] - v) < 0.02 * std0
        x = torch.tensor([[v, float("nan")]], dtype=torch.float64)
        cond_mean, _ = conditional_gaussian(mean, cov, x, torch.tensor([[True, False]]))
        assert abs(cond_mean[0, 1].item() - draws[in_bin, 1].mean()) < 0.03 * std1


def test_per_row_patterns_match_direct_solve() -> None:
    batch = _gaussian_batch(4, batch_size=3, n_rows=40, n_features=6)
    generator = torch.Generator().manual_seed(0)
    known = torch.rand(3, 40, 6, generator=generator) < 0.5
    known[:, :, 0] |= ~known.any(-1)  # rows with nothing known are allowed too, but test some known
    known[:, 0] = False  # and one row with nothing known: the unconditional mean
    x = batch["x"].double()
    cond_mean, cond_var = conditional_gaussian(batch["mean"], batch["cov"], x, known)
    for b in range(3):
        mu, cov = batch["mean"][b].double().numpy(), batch["cov"][b].double().numpy()
        for n in range(40):
            k = known[b, n].numpy()
            u = ~k
            expect = x[b, n].numpy().copy()
            var = np.zeros(6)
            if u.any():
                s_uk, s_kk = cov[np.ix_(u, k)], cov[np.ix_(k, k)]
                gain = s_uk @ np.linalg.inv(s_kk) if k.any() else np.zeros((u.sum(), 0))
                expect[u] = mu[u] + gain @ (expect[k] - mu[k])
                var[u] = np.diag(cov[np.ix_(u, u)] - gain @ cov[np.ix_(k, u)])
            np.testing.assert_allclose(cond_mean[b, n].numpy(), expect, rtol=1e-8, atol=1e-8)
            np.testing.assert_allclose(cond_var[b, n].numpy(), var, rtol=1e-7, atol=1e-8)


def test_known_cells_returned_bit_for_bit_and_unbatched_inputs() -> None:
    batch = _gaussian_batch(5, batch_size=1, n_rows=10, n_features=3)
    x, known = batch["x"][0], batch["known"][0]
    cond_mean, cond_var = conditional_gaussian(
        batch["mean"][0], batch["cov"][0], torch.where(known, x, torch.nan), known
    )
    assert cond_mean.shape == (10, 3) and cond_mean.dtype == torch.float64
    assert torch.equal(cond_mean[known], x[known].double())
    assert torch.isfinite(cond_mean).all() and (cond_var[~known] > 0).all()
