"""A closed-form linear-Gaussian estimate of every numeric cell, fed to the denoiser as an input feature.

Why: learning in-context linear regression from scratch costs a transformer hundreds of thousands of
tables, more than the CPU budget of this project. The conditional mean under a Gaussian fitted to the
table is cheap to compute exactly, is the right answer for linear-Gaussian data, and a strong baseline
for the rest; the network then learns the corrections (nonlinearity, categories, heavy tails) on top.
Both pieces are permutation-equivariant, so the denoiser stays set-equivariant.

The Gaussian is fitted to the *key rows* only, so a query row's feature depends only on itself and the key
rows, exactly like its attention. The fit starts from pairwise-complete products of known numeric cells
(shrunk toward the diagonal, spectrum clipped to be positive definite) and, with ``em_iters > 0``, refines
mean and covariance by EM for missing data: pairwise estimates are biased under MAR and wasteful at high
missingness (on validation Gaussian tables at ~30% missing the feature alone goes from 1.27x to 1.08x the
oracle error under MCAR and from 1.48x to 1.25x under MAR with 10 iterations).
"""

from __future__ import annotations

import torch


def table_covariance(
    x: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor, key_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Pairwise shrunk covariance (B, F, F), float64, of standardized numeric columns over the key rows.

    x: (B, N, F) standardized values; known: (B, N, F); is_cat: (B, F); key_mask: (B, N) or None.
    Categorical columns get unit variance and no covariance (they are left out of the estimate).
    """
    w = _observed(known, is_cat, key_mask)
    wf = w.double()
    xz = torch.where(w, x, torch.zeros_like(x)).double()
    pairs = wf.transpose(1, 2) @ wf  # (B, F, F) rows where both cells are known
    cov = (xz.transpose(1, 2) @ xz) / pairs.clamp(min=1)
    cov = torch.where(pairs >= 3, cov, torch.zeros_like(cov))  # too few pairs: no relation assumed
    cov = _shrink(cov, w.any(2).sum(1).double())
    # Pairwise estimates need not be positive definite: clip the spectrum.
    var = cov.diagonal(dim1=1, dim2=2)
    evals, evecs = torch.linalg.eigh(cov)
    evals = evals.clamp(min=1e-3 * var.mean(1, keepdim=True))
    return (evecs * evals[:, None, :]) @ evecs.transpose(1, 2)


def table_gaussian(
    x: torch.Tensor,
    known: torch.Tensor,
    is_cat: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    em_iters: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (B, F) and covariance (B, F, F), float64, fitted to the key rows' known numeric cells.

    ``em_iters = 0`` gives the pairwise covariance and a zero mean (the columns are standardized on their
    known cells); each EM iteration replaces the unknown cells by their conditional mean and adds their
    conditional covariance, then re-estimates (with the same shrinkage toward the diagonal).
    """
    cov = table_covariance(x, known, is_cat, key_mask)
    mean = torch.zeros(cov.shape[:2], dtype=torch.float64, device=x.device)
    if em_iters == 0:
        return mean, cov
    w = _observed(known, is_cat, key_mask)
    rows = w.any(2).double()  # (B, N): key rows with at least one known numeric cell
    n_rows = rows.sum(1, keepdim=True).clamp(min=1)  # (B, 1)
    for _ in range(em_iters):
        x_hat, cond_cov_sum = _conditional(x, w, mean, cov, row_weight=rows)
        mean = (x_hat * rows[..., None]).sum(1) / n_rows
        xc = (x_hat - mean[:, None, :]) * rows[..., None]
        scatter = xc.transpose(1, 2) @ xc + cond_cov_sum
        cov = _shrink(scatter / n_rows[..., None], n_rows[:, 0])
    return mean, cov


def gaussian_estimate(
    x: torch.Tensor,
    known: torch.Tensor,
    is_cat: torch.Tensor,
    cov: torch.Tensor,
    mean: torch.Tensor | None = None,
    chunk_rows: int = 256,
) -> torch.Tensor:
    """E[x_u | x_k] per row under N(mean, cov): (B, N, F) float32; known numeric cells return x, categorical 0."""
    if mean is None:
        mean = torch.zeros(cov.shape[:2], dtype=torch.float64, device=x.device)
    w = _observed(known, is_cat, None)
    out = torch.empty(x.shape, dtype=torch.float64, device=x.device)
    for s in range(0, x.shape[1], chunk_rows):
        out[:, s : s + chunk_rows] = _conditional(x[:, s : s + chunk_rows], w[:, s : s + chunk_rows], mean, cov)[0]
    out = torch.where(is_cat[:, None, :], torch.zeros_like(out), out)
    return out.float()


def _observed(known: torch.Tensor, is_cat: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    w = known & ~is_cat[:, None, :]
    return w if key_mask is None else w & key_mask[:, :, None]


def _shrink(cov: torch.Tensor, n_rows: torch.Tensor) -> torch.Tensor:
    """Shrink off-diagonal entries toward 0, harder when rows are few compared with features (Ledoit-Wolf-like).

    Zero or tiny variances (all-unknown, constant or categorical columns) become 1.
    """
    n_features = cov.shape[-1]
    var = cov.diagonal(dim1=1, dim2=2)
    var = torch.where(var > 1e-6, var, torch.ones_like(var))
    lam = (n_features / (n_features + n_rows)).clamp(0.05, 0.5)[:, None, None]
    off = cov - torch.diag_embed(cov.diagonal(dim1=1, dim2=2))
    return (1 - lam) * off + torch.diag_embed(var)


def _conditional(x, w, mean, cov, row_weight: torch.Tensor | None = None):
    """Per-row conditional mean (B, N, F) of all cells given the cells in w; with ``row_weight`` (B, N)
    also the weighted sum over rows of the conditional covariances (B, F, F), else None.

    With P = diag(w), A = P cov P + (I - P) equals cov_KK on the known block and the identity elsewhere
    (symmetric positive definite). E[x | x_K] = mean + cov A^-1 (x - mean)_K and, with L the Cholesky
    factor of A and W = L^-1 P cov, Cov[x | x_K] = cov - W^T W: the sum over rows is one matrix product.
    """
    m = w.double()
    xc = torch.where(w, x.double() - mean[:, None, :], torch.zeros_like(m))
    eye = torch.eye(cov.shape[-1], dtype=torch.float64, device=x.device)
    A = cov[:, None] * (m[..., :, None] * m[..., None, :]) + eye * (1 - m)[..., None]
    L = torch.linalg.cholesky(A)
    z = torch.cholesky_solve(xc[..., None], L)  # (B, N, F, 1), zero at unknown cells
    x_hat = mean[:, None, :] + (cov[:, None] @ z).squeeze(-1)
    if row_weight is None:
        return x_hat, None
    B, N, F = x.shape
    W = torch.linalg.solve_triangular(L, m[..., :, None] * cov[:, None], upper=False)  # (B, N, F, F)
    Ww = (W * row_weight[:, :, None, None]).reshape(B, N * F, F)
    return x_hat, row_weight.sum(1)[:, None, None] * cov - Ww.transpose(1, 2) @ W.reshape(B, N * F, F)
