"""The linear-Gaussian family: tables whose exact distribution is known, plus its exact conditional.

Every row of a table is an i.i.d. draw of N(mean, cov), so the best possible imputation of an unknown
cell (in RMSE) is E[x_unknown | x_known], which ``conditional_gaussian`` computes in closed form. This
is the oracle that validation compares a model against.

Covariances are strongly correlated on purpose (a model that imputes the column mean should lose
clearly): either a random linear DAG (each variable a weighted sum of earlier ones plus noise,
renormalized to unit variance as it is built, so long chains neither explode nor vanish) or a random
rotation of a fast-decaying eigen-spectrum.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._random import Rng
from .config import PriorConfig

KINDS = ("dag", "spectrum")


def sample_gaussian_tables(cfg: PriorConfig, rng: Rng, batch_size: int, n_rows: int, n_features: int) -> dict:
    """Draw B tables of N rows from random multivariate normals.

    Returns ``x`` float32 (B, N, F), ``mean`` float32 (B, F), ``cov`` float32 (B, F, F). The rows are
    drawn from exactly N(mean, cov) up to float32 rounding of the returned ``cov``.
    """
    B, N, F = batch_size, n_rows, n_features
    kind = rng.categorical_t((B, 1, 1), cfg.gaussian_weights, KINDS)
    corr = torch.where(kind == 0, _dag_correlation(cfg, rng, B, F), _spectrum_correlation(cfg, rng, B, F))
    # Shrink towards the identity: smallest eigenvalue >= eps, so Cholesky and the oracle's solves are
    # well conditioned while correlations stay strong.
    eps = 1.0 / cfg.max_condition
    eye = torch.eye(F, dtype=torch.float64, device=rng.device)
    corr = (1 - eps) * corr + eps * eye

    perm = rng.permutation_t(B, F)  # the DAG's order must not leak into column positions
    corr = corr.gather(1, perm.unsqueeze(-1).expand(B, F, F)).gather(2, perm.unsqueeze(1).expand(B, F, F))
    scale = rng.log_uniform_t((B, F), *cfg.gaussian_scale).double()
    cov = (corr * scale.unsqueeze(-1) * scale.unsqueeze(-2)).float()
    mean = rng.randn(B, F) * cfg.gaussian_mean_std

    chol = torch.linalg.cholesky(cov.double()).float()  # of the float32 cov that is returned
    x = mean.unsqueeze(1) + rng.randn(B, N, F) @ chol.transpose(1, 2)
    return {"x": x, "mean": mean, "cov": cov}


def _dag_correlation(cfg: PriorConfig, rng: Rng, B: int, F: int) -> Tensor:
    """Correlation (B, F, F) float64 of x_j = sum_{i<j} w_ji x_i + e_j, each x_j rescaled to unit var."""
    density = rng.uniform_t((B, 1, 1), *cfg.dag_density)
    sign = torch.where(rng.rand(B, F, F) < 0.5, -1.0, 1.0)
    w = rng.uniform_t((B, F, F), *cfg.dag_weight) * sign * (rng.rand(B, F, F) < density)
    w = torch.tril(w, diagonal=-1).double()  # w[b, j, i]: edge i -> j
    noise_var = rng.uniform_t((B, F), 0.1, 1.0).double()
    cov = torch.zeros(B, F, F, dtype=torch.float64, device=rng.device)
    cov[:, 0, 0] = 1.0
    for j in range(1, F):
        wj = w[:, j, :j].unsqueeze(-1)  # (B, j, 1)
        c_w = cov[:, :j, :j] @ wj  # cov(x_<j, sum w x) (B, j, 1)
        std = torch.sqrt((wj * c_w).sum((1, 2)) + noise_var[:, j])  # (B,)
        col = c_w.squeeze(-1) / std.unsqueeze(-1)
        cov[:, j, :j] = col
        cov[:, :j, j] = col
        cov[:, j, j] = 1.0
    return cov


def _spectrum_correlation(cfg: PriorConfig, rng: Rng, B: int, F: int) -> Tensor:
    """Correlation (B, F, F) float64 from Q diag(lambda) Q^T, lambda_i = exp(-rate * i / F)."""
    q, r = torch.linalg.qr(rng.randn(B, F, F).double())
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)  # Haar-uniform rotation
    rate = rng.uniform_t((B, 1), *cfg.spectrum_decay).double()
    steps = torch.arange(F, device=rng.device, dtype=torch.float64) / max(F - 1, 1)
    lam = torch.exp(-rate * steps).clamp_min(1.0 / cfg.max_condition)  # (B, F)
    cov = (q * lam.unsqueeze(1)) @ q.transpose(1, 2)
    d = torch.rsqrt(torch.diagonal(cov, dim1=-2, dim2=-1))
    return cov * d.unsqueeze(-1) * d.unsqueeze(-2)


def conditional_gaussian(
    mean: Tensor, cov: Tensor, x: Tensor, known: Tensor, *, max_elements: int = 2**22
) -> tuple[Tensor, Tensor]:
    """Exact E[x_unknown | x_known] and Var[x_unknown | x_known] of rows drawn from N(mean, cov).

    mean (B, F), cov (B, F, F), x (B, N, F), known bool (B, N, F); unbatched (F,), (F, F), (N, F),
    (N, F) also work. Each row may have its own known pattern. Computed in float64: for each row the
    masked system ``A = M cov M + (I - M)`` (M = diag(known)) equals cov_kk on the known block and the
    identity elsewhere, so one batched Cholesky solve covers every pattern at once.

    Returns ``(cond_mean, cond_var)``, both float64 shaped like ``x``: cond_mean equals ``x`` at known
    cells and the conditional mean elsewhere; cond_var is 0 at known cells and the conditional variance
    of each unknown cell elsewhere. Unknown entries of ``x`` are never read (NaN is fine).
    """
    unbatched = x.dim() == 2
    if unbatched:
        mean, cov, x, known = mean[None], cov[None], x[None], known[None]
    mean, cov = torch.as_tensor(mean).double(), torch.as_tensor(cov).double()
    x, known = torch.as_tensor(x).double(), torch.as_tensor(known).bool()
    B, N, F = x.shape
    x_c = torch.where(known, x - mean.unsqueeze(1), 0.0)  # centred known values, 0 elsewhere
    cond_mean = torch.empty_like(x_c)
    cond_var = torch.empty_like(x_c)
    eye = torch.eye(F, dtype=torch.float64, device=x.device)
    rows_per_table = max(1, max_elements // (B * F * (F + 1)))  # bounds the (B, n, F, F) work arrays
    for start in range(0, N, rows_per_table):
        sl = slice(start, min(N, start + rows_per_table))
        m = known[:, sl].double()  # (B, n, F)
        mm = m.unsqueeze(-1) * m.unsqueeze(-2)  # (B, n, F, F)
        a = mm * cov.unsqueeze(1) + eye * (1 - m).unsqueeze(-1)
        chol = torch.linalg.cholesky(a)
        # Right-hand sides: the centred known values and cov's known rows (for the variances).
        rhs = torch.cat([x_c[:, sl].unsqueeze(-1), m.unsqueeze(-1) * cov.unsqueeze(1)], dim=-1)
        sol = torch.cholesky_solve(rhs, chol)  # (B, n, F, 1 + F); zero on unknown rows
        mu = mean.unsqueeze(1) + (cov.unsqueeze(1) @ sol[..., :1]).squeeze(-1)
        var = torch.diagonal(cov, dim1=-2, dim2=-1).unsqueeze(1) - (cov.unsqueeze(1) * sol[..., 1:]).sum(-2)
        cond_mean[:, sl] = torch.where(known[:, sl], x[:, sl], mu)
        cond_var[:, sl] = torch.where(known[:, sl], 0.0, var.clamp_min(0.0))
    if unbatched:
        return cond_mean[0], cond_var[0]
    return cond_mean, cond_var
