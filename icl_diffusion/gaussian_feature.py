"""A closed-form linear-Gaussian estimate of every numeric cell, fed to the denoiser as an input feature.

Why: learning in-context linear regression from scratch costs a transformer hundreds of thousands of
tables, more than the CPU budget of this project. The conditional mean under a Gaussian fitted to the
table is cheap to compute exactly, is the right answer for linear-Gaussian data, and a strong baseline
for the rest; the network then learns the corrections (nonlinearity, categories, heavy tails) on top.
Both pieces are permutation-equivariant, so the denoiser stays set-equivariant.

The covariance is estimated from the *key rows* only (pairwise-complete products of known numeric cells,
shrunk toward its diagonal and clipped to be positive definite), so a query row's feature depends only on
itself and the key rows, exactly like its attention.
"""

from __future__ import annotations

import torch


def table_covariance(
    x: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor, key_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Shrunk covariance (B, F, F), float64, of standardized numeric columns over the key rows.

    x: (B, N, F) standardized values; known: (B, N, F); is_cat: (B, F); key_mask: (B, N) or None.
    Categorical columns get unit variance and no covariance (they are left out of the estimate).
    """
    w = known & ~is_cat[:, None, :]
    if key_mask is not None:
        w = w & key_mask[:, :, None]
    wf = w.double()
    xz = torch.where(w, x, torch.zeros_like(x)).double()
    pairs = wf.transpose(1, 2) @ wf  # (B, F, F) rows where both cells are known
    cov = (xz.transpose(1, 2) @ xz) / pairs.clamp(min=1)
    cov = torch.where(pairs >= 3, cov, torch.zeros_like(cov))  # too few pairs: no relation assumed
    var = cov.diagonal(dim1=1, dim2=2)
    var = torch.where(var > 1e-6, var, torch.ones_like(var))
    eye = torch.diag_embed(var)
    # Shrinkage toward the diagonal, stronger when rows are few compared with features (Ledoit-Wolf-like).
    n_rows = w.any(2).sum(1).double().clamp(min=1)  # (B,)
    lam = (x.shape[2] / (x.shape[2] + n_rows)).clamp(0.05, 0.5)[:, None, None]
    cov = (1 - lam) * (cov - torch.diag_embed(cov.diagonal(dim1=1, dim2=2))) + eye
    # Pairwise estimates need not be positive definite: clip the spectrum.
    evals, evecs = torch.linalg.eigh(cov)
    evals = evals.clamp(min=1e-3 * var.mean(1, keepdim=True))
    return (evecs * evals[:, None, :]) @ evecs.transpose(1, 2)


def gaussian_estimate(
    x: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor, cov: torch.Tensor, chunk_rows: int = 256
) -> torch.Tensor:
    """E[x_u | x_k] per row under N(0, cov): (B, N, F) float32; known numeric cells return x, categorical 0.

    Solves, per row, [cov_KK] z_K = x_K with identity rows for the unknown cells, then x_hat = cov z.
    """
    B, N, Fe = x.shape
    num_known = (known & ~is_cat[:, None, :]).double()
    xz = torch.where(known & ~is_cat[:, None, :], x, torch.zeros_like(x)).double()
    out = torch.empty(B, N, Fe, dtype=torch.float64, device=x.device)
    eye = torch.eye(Fe, dtype=torch.float64, device=x.device)
    for s in range(0, N, chunk_rows):
        m = num_known[:, s : s + chunk_rows]  # (B, n, F)
        mm = m[..., :, None] * m[..., None, :]  # (B, n, F, F)
        A = cov[:, None] * mm + eye * (1 - m)[..., None]
        z = torch.linalg.solve(A, xz[:, s : s + chunk_rows])  # (B, n, F)
        out[:, s : s + chunk_rows] = (cov[:, None] @ z[..., None]).squeeze(-1)
    out = torch.where(is_cat[:, None, :], torch.zeros_like(out), out)
    return out.float()
