import torch

from icl_diffusion.gaussian_feature import gaussian_estimate, table_covariance


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
