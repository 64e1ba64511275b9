"""A nearest-rows estimate of every cell: the nonlinear companion of the linear-Gaussian input feature.

Why: the Gaussian feature is the right answer for linear data and the network learned little past it. Where
real tables beat a linear fit (panel data with near-duplicate rows, clusters, thresholds) a row's nearest
rows know the answer: a kernel-weighted average of the cell in the rows closest to it over the cells both
rows know. It is cheap (matrix products over rows x key rows), exact, and permutation-equivariant; the
network learns when to trust it over the Gaussian estimate.

Definitions (standardized numeric columns; categorical columns one-hot, so a mismatch costs 2, the expected
squared difference of two independent standardized numbers):
- distance d(i, r) = mean over the columns known in both row i and key row r of the squared difference
  (no shared column: no distance, the row gets no weight); a row is never its own neighbour;
- weight(i, r) = exp(-(d(i, r) - d_min(i)) / tau_i) (with ``kernel="nearest"``: 0 beyond the ``NEIGHBOURS`` nearest
  key rows; ``DenoiserConfig.neighbour_kernel``), at two bandwidths: smooth, tau_i = mean of row i's
  ``NEIGHBOURS`` smallest distances (what suits most real tables), and sharp, tau_i = d_min(i), its nearest
  row's distance (near-duplicate rows: panel data, repeated measures);
- estimate of cell (i, j) = weighted mean of column j over the key rows that know it (for categorical
  columns a level distribution, smooth bandwidth only); 0 (the column mean) and no levels where no weighted
  row knows it.
The log of d_min also goes to the network: near-duplicate rows make the sharp estimate trustworthy.
"""

from __future__ import annotations

import torch

from .gaussian_feature import collapse, expand_table, numeric_part, one_hot_layout

NEIGHBOURS = 10
_MIN_WEIGHT = 1e-6  # total weight below this: no neighbour knows the column


def neighbour_estimates(
    x: torch.Tensor,
    known: torch.Tensor,
    is_cat: torch.Tensor,
    n_classes: torch.Tensor,
    n_levels: int,
    keys: tuple[torch.Tensor, torch.Tensor] | None = None,
    key_mask: torch.Tensor | None = None,
    neighbours: int = NEIGHBOURS,
    kernel: str = "all",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest-rows estimates of every cell of x from the key rows.

    x: (B, N, F) standardized numbers / codes; known: (B, N, F) (padding excluded); is_cat, n_classes: (B, F).
    keys: (values, known) (B or 1, K, F) of the key rows when they are other rows than x's (a query chunk
    against cached key rows); None: the rows of x are the key rows, ``key_mask`` (B, N) selecting them.
    kernel: "all" weighs every key row; "nearest" only the ``neighbours`` nearest (by distance; ties kept).
    Returns float32 numeric estimates (B, N, F) at the smooth and at the sharp bandwidth (known cells as they
    are; 0 at categorical columns), level probabilities (B, N, F, n_levels) (all 0 at numeric columns and
    where no neighbour knows the column) and log d_min (B, N) (0 for a row no key row shares a column with).
    """
    B, N, _ = x.shape
    layout = one_hot_layout(is_cat, n_classes)
    xk, kk = (x, known) if keys is None else (k.expand(B, -1, -1) for k in keys)
    x_e, w_e = expand_table(x, known, layout)
    xk_e, wk_e = (x_e, w_e) if keys is None else expand_table(xk, kk, layout)
    x_e, w_e, xk_e, wk_e = x_e.float(), w_e.float(), xk_e.float(), wk_e.float()
    # Squared differences summed over the slots known in both rows (unknown slots hold 0 in x_e).
    ss = (x_e**2) @ wk_e.transpose(1, 2) + w_e @ (xk_e**2).transpose(1, 2) - 2 * x_e @ xk_e.transpose(1, 2)
    shared = known.float() @ kk.float().transpose(1, 2)  # (B, N, K) columns known in both rows
    d = ss.clamp(min=0) / shared.clamp(min=1)
    invalid = shared == 0
    if keys is None:
        invalid = invalid | torch.eye(N, dtype=torch.bool, device=x.device)
        if key_mask is not None:
            invalid = invalid | ~key_mask[:, None, :]
    d = d.masked_fill(invalid, float("inf"))
    nearest = torch.topk(d, min(neighbours, d.shape[2]), dim=2, largest=False).values  # (B, N, k)
    finite = torch.isfinite(nearest)
    none = ~finite[..., 0]  # no key row shares a known column with this row
    smooth = torch.where(finite, nearest, 0.0).sum(2) / finite.sum(2).clamp(min=1)
    sharp = nearest[..., 0]
    taus = [torch.where(none, 1.0, tau).clamp(min=1e-4) for tau in (smooth, sharp)]  # (B, N) each
    level = layout["level"][:, None, :] >= 0
    ests = []
    for tau in taus:
        weight = torch.where(invalid, 0.0, torch.exp(-(d - nearest[..., :1]).clamp(max=1e4) / tau[..., None]))
        if kernel == "nearest":
            weight = torch.where(d <= nearest[..., -1:], weight, 0.0)
        total = weight @ wk_e  # (B, N, E) weight of the key rows that know each slot (the nearest weighs 1)
        est = torch.where(total > _MIN_WEIGHT, (weight @ xk_e) / total.clamp(min=_MIN_WEIGHT), 0.0)
        ests.append((torch.where(w_e > 0, x_e, est), total > _MIN_WEIGHT))  # known cells as they are
    (est, has), (sharp_est, _) = ests
    scores = torch.where(level & has, est.clamp(min=1e-6).log(), float("-inf"))
    scores = torch.where(level & (w_e > 0), torch.where(x_e > 0.5, 0.0, float("-inf")), scores)
    num, probs = collapse(est, scores, layout, is_cat, n_levels)
    sharp_num = numeric_part(sharp_est, layout, is_cat.shape[1])
    return num.float(), sharp_num.float(), probs.float(), taus[1].log()
