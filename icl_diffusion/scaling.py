"""Table math shared by training and inference: how a numeric column is scaled for the network.

Training standardizes each prior table with the mean and std of its known cells; inference must do exactly
the same to a user's table (``preprocessing._moments`` reproduces it in float64), so both import it from here.
"""

from __future__ import annotations

import torch

CLIP = 8.0  # standardized values are clamped for the network: rare outliers must not dominate the loss
# A user's standardized table is held within +-TABLE_CLIP (float32 and its squares stay finite); the network sees it
# clamped to +-CLIP (``inference.TableDenoiser``), the engine's other estimates (trees, kernel regression) and its
# imputations as it is: a column whose observed values reach 21 of their stds (AER/Guns' density under MAR, DC's
# rows) keeps them, where a clamp at CLIP capped its imputations at 8 stds (session 39).
TABLE_CLIP = 1e4


def standardize(x: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-column standardization with the mean and std of the *known* cells (as at inference).

    x: (B, N, F) raw values; known: (B, N, F); is_cat: (B, F). Categorical columns pass through.
    Returns (x_std clamped to +-CLIP, mean (B, 1, F), std (B, 1, F)).
    """
    w = known.float()
    count = w.sum(1, keepdim=True).clamp(min=1)
    xz = torch.where(known, x, torch.zeros_like(x))
    mean = xz.sum(1, keepdim=True) / count
    var = (torch.where(known, x - mean, torch.zeros_like(x)) ** 2).sum(1, keepdim=True) / count
    std = var.sqrt()
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # constant columns: shift only
    cat = is_cat[:, None, :]
    mean = torch.where(cat, torch.zeros_like(mean), mean)
    std = torch.where(cat, torch.ones_like(std), std)
    x_std = torch.where(cat.expand_as(x), x, ((x - mean) / std).clamp(-CLIP, CLIP))
    return x_std, mean, std
