import torch

from icl_diffusion.gaussian_feature import gaussian_estimate, table_covariance, table_gaussian
from icl_diffusion.training import standardize


def _gaussian_table(n=2000, f=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(f, f, generator=g)
    cov = a @ a.T + 0.1 * torch.eye(f)
    sd = cov.diag().sqrt()
    cov = cov / sd[:, None] / sd[None, :]  # unit variances: the table is standardized
    x = torch.randn(n, f, generator=g) @ torch.linalg.cholesky(cov).T
    return x[None], cov.double()


def test_estimate_matches_exact_conditional_mean_with_many_rows():
    x, cov = _gaussian_table()
    known = torch.ones_like(x, dtype=torch.bool)
    known[0, :200, 0] = False  # hide column 0 in 200 rows, the rest is complete
    is_cat = torch.zeros(1, 4, dtype=torch.bool)
    est = gaussian_estimate(x, known, is_cat, table_covariance(x, known, is_cat))
    k = [1, 2, 3]
    exact = (cov[0, k] @ torch.linalg.inv(cov[k][:, k]) @ x[0, :200, k].double().T).float()
    # The covariance is estimated from 2,000 rows and shrunk 5%: close to exact, not equal.
    assert torch.corrcoef(torch.stack([est[0, :200, 0], exact]))[0, 1] > 0.99
    truth = x[0, :200, 0]
    assert (est[0, :200, 0] - truth).pow(2).mean() < 1.05 * (exact - truth).pow(2).mean()
    assert torch.equal(est[known], x[known])  # known numeric cells come back as they are


def test_covariance_is_positive_definite_and_ignores_categorical_and_non_key_rows():
    x, _ = _gaussian_table(n=12, f=6, seed=1)
    known = torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) > 0.6  # sparse: indefinite pairs
    is_cat = torch.tensor([[False, False, False, False, False, True]])
    key = torch.ones(1, 12, dtype=torch.bool)
    key[0, -3:] = False
    cov = table_covariance(x, known, is_cat, key)
    assert torch.linalg.eigvalsh(cov).min() > 0
    assert torch.all(cov[0, 5, :5] == 0)
    x2 = x.clone()
    x2[0, -3:] = 100.0  # values in non-key rows do not change the covariance
    assert torch.equal(cov, table_covariance(x2, known, is_cat, key))
    est = gaussian_estimate(x, known, is_cat, cov)
    assert torch.isfinite(est).all() and torch.all(est[0, :, 5] == 0)


def test_nothing_known_gives_zero_estimate():
    x, _ = _gaussian_table(n=10, f=3)
    known = torch.zeros_like(x, dtype=torch.bool)
    is_cat = torch.zeros(1, 3, dtype=torch.bool)
    est = gaussian_estimate(x, known, is_cat, table_covariance(x, known, is_cat))
    assert torch.equal(est, torch.zeros_like(est))


def _mar_table(n=300, f=5, seed=3):
    """A Gaussian table where column 0 is hidden when column 1 is high (MAR): pairwise estimates are biased."""
    x, cov = _gaussian_table(n=n, f=f, seed=seed)
    known = torch.ones_like(x, dtype=torch.bool)
    known[0, :, 0] = x[0, :, 1] < 0.3
    x = standardize(x, known, torch.zeros(1, f, dtype=torch.bool))[0]  # as the model sees it
    return x, cov, known


def test_em_fit_beats_pairwise_under_mar_and_keeps_known_cells():
    x, _cov, known = _mar_table()
    is_cat = torch.zeros(1, x.shape[2], dtype=torch.bool)
    hidden = ~known[0, :, 0]
    errors = {}
    for iters in (0, 10):
        mean, fit = table_gaussian(x, known, is_cat, em_iters=iters)
        assert torch.linalg.eigvalsh(fit).min() > 0
        est = gaussian_estimate(x, known, is_cat, fit, mean)
        assert torch.equal(est[known], x[known])
        errors[iters] = float((est[0, hidden, 0] - x[0, hidden, 0]).pow(2).mean())
    # EM recovers the shifted mean of the hidden cells: clearly better than pairwise, which assumes mean 0.
    assert errors[10] < 0.8 * errors[0]


def test_em_fit_with_zero_iterations_is_the_pairwise_fit():
    x, _, known = _mar_table(n=40)
    is_cat = torch.zeros(1, x.shape[2], dtype=torch.bool)
    mean, cov = table_gaussian(x, known, is_cat)
    assert torch.equal(cov, table_covariance(x, known, is_cat)) and torch.equal(mean, torch.zeros_like(mean))


def test_em_fit_ignores_categorical_non_key_rows_and_empty_columns():
    x, _ = _gaussian_table(n=30, f=5, seed=4)
    known = torch.rand(x.shape, generator=torch.Generator().manual_seed(5)) > 0.4
    known[0, :, 4] = False  # a column with nothing known
    is_cat = torch.tensor([[False, False, False, True, False]])
    key = torch.ones(1, 30, dtype=torch.bool)
    key[0, -5:] = False
    mean, cov = table_gaussian(x, known, is_cat, key, em_iters=5)
    x2 = x.clone()
    x2[0, -5:] = 100.0
    mean2, cov2 = table_gaussian(x2, known, is_cat, key, em_iters=5)
    assert torch.allclose(cov, cov2) and torch.allclose(mean, mean2)
    for col in (3, 4):  # categorical and empty: mean 0, unit variance, no covariance
        assert float(mean[0, col]) == 0.0 and float(cov[0, col, col]) == 1.0
        assert torch.all(cov[0, col, torch.arange(5) != col] == 0)
    est = gaussian_estimate(x, known, is_cat, cov, mean)
    assert torch.isfinite(est).all() and torch.all(est[0, :, 3] == 0)
