"""Test-time ensembling over monotone column transforms (TabPFN-style), for the point estimate.

The network's strongest input is a closed-form linear-Gaussian estimate, which fits a skewed column badly.
An ensemble member ("yeo_johnson") sees every numeric column Gaussianized by a Yeo-Johnson transform (lambda
fitted by maximum likelihood to the column's known cells) and standardized again; its estimates are mapped
back to the table's units and averaged with the plain member's ("identity"). Class probabilities of
categorical cells are averaged likewise. Measured in benchmarks/results/ensemble.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MEMBERS = ("identity", "yeo_johnson")
MIN_DISTINCT = 5  # columns with fewer distinct known values (binary, small ordinal) stay as they are
# Lambdas searched (steps of 0.1): beyond this range come degenerate columns and an inverse that overflows.
LAMBDA_GRID = np.linspace(-3.0, 5.0, 81)


def check_members(members, name: str = "ensemble") -> tuple[str, ...]:
    """``members`` as a tuple, or a one-line ValueError naming the setting (``name``): a non-empty tuple (or
    list) of ``MEMBERS``."""
    if isinstance(members, str) or not isinstance(members, (tuple, list)) or not members \
            or not set(members) <= set(MEMBERS):
        raise ValueError(f"{name} must be a non-empty tuple of {', '.join(MEMBERS)}, got {members!r}")
    return tuple(members)


def yeo_johnson(x: torch.Tensor, lmbda: torch.Tensor) -> torch.Tensor:
    """Yeo-Johnson transform (Yeo & Johnson, 2000) of x (N, F) with one lambda per column (F,); any shapes
    that broadcast."""
    x, lmbda = torch.broadcast_tensors(x, lmbda)
    pos = x >= 0
    lp, ln = lmbda, 2 - lmbda
    xp, xn = x.clamp(min=0), (-x).clamp(min=0)
    up = torch.where(lp.abs() < 1e-6, torch.log1p(xp), ((xp + 1) ** lp - 1) / torch.where(lp.abs() < 1e-6, 1, lp))
    down = torch.where(ln.abs() < 1e-6, torch.log1p(xn), ((xn + 1) ** ln - 1) / torch.where(ln.abs() < 1e-6, 1, ln))
    return torch.where(pos, up, -down)


def yeo_johnson_inverse(y: torch.Tensor, lmbda: torch.Tensor) -> torch.Tensor:
    """The inverse of ``yeo_johnson``: y (N, F), lambda (F,)."""
    y, lmbda = torch.broadcast_tensors(y, lmbda)
    pos = y >= 0
    lp, ln = lmbda, 2 - lmbda
    yp, yn = y.clamp(min=0), (-y).clamp(min=0)
    safe_p, safe_n = torch.where(lp.abs() < 1e-6, 1, lp), torch.where(ln.abs() < 1e-6, 1, ln)
    up = torch.where(lp.abs() < 1e-6, torch.expm1(yp), (yp * safe_p + 1).clamp(min=0) ** (1 / safe_p) - 1)
    down = torch.where(ln.abs() < 1e-6, torch.expm1(yn), (yn * safe_n + 1).clamp(min=0) ** (1 / safe_n) - 1)
    return torch.where(pos, up, -down)


@dataclass
class YeoJohnson:
    """Per-column Yeo-Johnson transform of a standardized table, fitted on its known cells.

    lmbda, mean, std, low, high: (F,) float64; the identity (lambda 1, mean 0, std 1) for categorical columns
    and columns with fewer than ``MIN_DISTINCT`` distinct known values. low, high: the transformed known
    values' range, where the inverse maps estimates back (no extrapolation through a convex inverse).
    """

    lmbda: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    active: torch.Tensor  # (F,) bool: the columns transformed

    @classmethod
    def fit(cls, x: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor) -> YeoJohnson:
        """x (N, F) standardized, known (N, F) bool, is_cat (F,) bool. Each column's lambda maximizes the
        Gaussian log-likelihood of its transformed known values over a grid (``LAMBDA_GRID``), all columns at
        once."""
        x64, known = x.detach().double(), known.bool()
        n = known.sum(0).clamp(min=1)  # (F,)
        lmbda = torch.as_tensor(LAMBDA_GRID, dtype=torch.float64, device=x.device)  # (L,)
        z = yeo_johnson(x64[None], lmbda[:, None, None].expand(-1, 1, x.shape[1]))  # (L, N, F)
        mean = torch.where(known, z, 0).sum(1) / n  # (L, F)
        var = torch.where(known, (z - mean[:, None]) ** 2, 0).sum(1) / n
        jacobian = torch.where(known, torch.sign(x64) * torch.log1p(x64.abs()), 0).sum(0)  # (F,)
        loglik = -0.5 * n * var.clamp(min=1e-300).log() + (lmbda[:, None] - 1) * jacobian  # (L, F)
        best = loglik.argmax(0)  # (F,)
        cols = torch.arange(x.shape[1], device=x.device)
        distinct = torch.tensor([len(torch.unique(x64[known[:, j], j])) for j in range(x.shape[1])], device=x.device)
        active = ~is_cat.to(x.device) & (distinct >= MIN_DISTINCT) & (var[best, cols] > 0)
        lam = torch.where(active, lmbda[best], 1.0)
        mean, std = torch.where(active, mean[best, cols], 0.0), torch.where(active, var[best, cols].sqrt(), 1.0)
        zt = (yeo_johnson(x64, lam) - mean) / std
        low = torch.where(known, zt, torch.inf).amin(0)
        high = torch.where(known, zt, -torch.inf).amax(0)
        return cls(lam, mean, std, torch.where(active, low, -torch.inf), torch.where(active, high, torch.inf), active)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The transformed, standardized table (N, F); untransformed columns as they are."""
        z = (yeo_johnson(x.double(), self.lmbda) - self.mean) / self.std
        return torch.where(self.active, z, x.double()).to(x.dtype)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Estimates (N, F) in transformed units back in the table's, clipped to the known values' range."""
        y = z.double().clamp(self.low, self.high) * self.std + self.mean
        return torch.where(self.active, yeo_johnson_inverse(y, self.lmbda), z.double()).to(z.dtype)
