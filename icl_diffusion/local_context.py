"""Local contexts: each row imputed again with the rows most similar to it as its context (retrieval).

The network's context is a table of key rows; its strongest input is a linear-Gaussian estimate fitted to
them. Fitted to the rows near a row instead of the whole table, the same estimate is local linear
regression, and the rows the network attends to are the row's neighbours: a nonlinear in-context estimate
without retraining (the idea of retrieval for in-context tabular models, e.g. LoCalPFN and TabDPT).

The rows that may serve as context are grouped by k-means over the table as the global point estimate filled
it (numeric columns as standardized, categorical columns one-hot scaled so that two different levels are as
far apart as 1 standard deviation); each row to impute joins the nearest group and is imputed with the
``context_rows`` rows nearest to that group's centre as its context, the sub-table's numeric columns
standardized again on it (``local_tables``). ``inference.local_point`` runs the network on them; ``inference.impute`` averages the
result with the global point estimate (``SamplerConfig.local_context_rows``).
"""

from __future__ import annotations

import math

import torch

KMEANS_ITERATIONS = 10
# The blend of the local estimate with the global one (``choose_weights``): the weights a column may take (at
# most half: held-out cells are missing at random, the table's may not be, and under MNAR the nearest rows
# mislead), and the pseudo-cells pulling a column's choice toward its table's. Requiring a significant gain
# instead (2 standard errors) kept less of the gain: benchmarks/results/local_context.md.
WEIGHT_GRID = (0.0, 0.25, 0.5)
WEIGHT_PRIOR_CELLS = 20


def row_space(filled: torch.Tensor, is_cat: torch.Tensor, n_classes: torch.Tensor) -> torch.Tensor:
    """(N, E) coordinates of the rows of a filled standardized table (N, F), in which distances compare rows:
    numeric columns as they are, each categorical column one-hot times 1/sqrt(2) (two levels 1 apart)."""
    parts = []
    for j in range(filled.shape[1]):
        if bool(is_cat[j]):
            codes = filled[:, j].round().long().clamp(0, int(n_classes[j]) - 1)
            parts.append(torch.nn.functional.one_hot(codes, int(n_classes[j])).to(filled.dtype) / math.sqrt(2))
        else:
            parts.append(filled[:, j : j + 1])
    return torch.cat(parts, 1)


def nearest(z: torch.Tensor, centres: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Index (N,) of the nearest centre of each row of z (N, E), in chunks of rows (memory ~ chunk x centres)."""
    return torch.cat([torch.cdist(z[i : i + chunk], centres).argmin(1) for i in range(0, len(z), chunk)])


def kmeans(z: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Cluster labels (N,) of the rows of z (N, E) into at most k groups: k-means++ seeding (seeded), then
    ``KMEANS_ITERATIONS`` Lloyd steps; empty groups vanish. Time ~ N k E per step."""
    n = len(z)
    k = max(1, min(k, n))
    picks = [int(torch.randint(n, (1,), generator=generator))]
    d = ((z - z[picks[0]]) ** 2).sum(1)  # squared distance of each row to its nearest pick
    for _ in range(k - 1):
        if float(d.sum()) <= 0:
            break
        picks.append(int(torch.multinomial(d / d.sum(), 1, generator=generator)))
        d = torch.minimum(d, ((z - z[picks[-1]]) ** 2).sum(1))
    centres = z[picks]
    labels = nearest(z, centres)
    for _ in range(KMEANS_ITERATIONS):
        sums = torch.zeros_like(centres).index_add_(0, labels, z)
        counts = torch.bincount(labels, minlength=len(centres))
        centres = sums[counts > 0] / counts[counts > 0, None]
        labels = nearest(z, centres)
    return torch.unique(labels, return_inverse=True)[1]


def local_tables(filled: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor, n_classes: torch.Tensor,
                 candidates: torch.Tensor, queries_are_keys: bool, context_rows: int, query_rows: int,
                 seed: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """[(rows of a sub-table (sorted), which of them take their imputation from it, which are its key rows)],
    covering every row with an unknown cell once; [] when there are at most ``context_rows + query_rows``
    candidate rows (one context is already local).

    The ``candidates`` (the rows a context may hold: every row when imputing a table, the fitted rows when
    imputing or predicting new ones) are grouped by k-means into groups of ``query_rows`` on average; each row
    to impute joins the group of the nearest centre, and the group's context is the ``context_rows`` candidates
    nearest to that centre. So a row's context depends on the candidates and on its own row only. The rows to
    impute are key rows of their sub-table too when ``queries_are_keys`` (a table imputed as a whole, where
    every row is context); otherwise they attend to the context alone, each imputed independently of the others.
    filled: (N, F) the table filled by the global point estimate; known: (N, F) bool.
    """
    todo = (~known).any(1).nonzero().squeeze(1)
    if len(candidates) <= context_rows + query_rows or len(todo) == 0:
        return []
    z = row_space(filled, is_cat, n_classes)
    generator = torch.Generator().manual_seed(seed)
    labels = kmeans(z[candidates], math.ceil(len(candidates) / query_rows), generator)
    centres = torch.stack([z[candidates[labels == g]].mean(0) for g in range(int(labels.max()) + 1)])
    group = nearest(z[todo], centres)
    out = []
    for g in range(len(centres)):
        queries = todo[group == g]
        if len(queries) == 0:
            continue
        d = ((z[candidates] - centres[g]) ** 2).sum(1)
        context = candidates[torch.topk(d, context_rows, largest=False).indices]
        rows = torch.unique(torch.cat([context, queries]))  # sorted
        take = torch.isin(rows, queries)
        keys = torch.ones_like(take) if queries_are_keys else torch.isin(rows, context)
        out.append((rows, take, keys))
    return out


def standardize(x: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) (F,) of each numeric column's known cells (0 and 1 for categorical or constant columns)."""
    num = known & ~is_cat[None, :]
    count = num.sum(0).clamp(min=1)
    mean = torch.where(num, x, 0).sum(0) / count
    var = torch.where(num, (x - mean) ** 2, 0).sum(0) / count
    std = var.sqrt()
    ok = ~is_cat & (num.sum(0) >= 2) & (std > 1e-6)
    return torch.where(ok, mean, 0.0), torch.where(ok, std, 1.0)


def pooled_loss(loss: torch.Tensor, cells: torch.Tensor, columns: torch.Tensor, prior_cells: int) -> torch.Tensor:
    """(W, F): ``loss`` (W, F) summed over each column's ``cells`` (F,) held cells, plus ``prior_cells`` pseudo-cells of
    the ``columns``' (F,) bool mean loss per held cell (none: the loss as it is; 0 x an infinite loss, a blend refused,
    would be NaN)."""
    if not prior_cells:
        return loss
    return loss + prior_cells * (loss[:, columns].sum(1) / cells[columns].sum())[:, None]


def least_loss(loss: torch.Tensor, cells: torch.Tensor, columns: torch.Tensor, prior_cells: int) -> torch.Tensor:
    """Per-column index (F,) of the candidate of least ``pooled_loss``, so that a column with few held cells follows
    the table (the choice elsewhere is the pooled one)."""
    return pooled_loss(loss, cells, columns, prior_cells).argmin(0)


def soft_choice(loss: torch.Tensor, cells: torch.Tensor, columns: torch.Tensor, prior_cells: int, grid: torch.Tensor,
                soft_cells: float) -> torch.Tensor:
    """Per-column weights (F, K) averaged over the candidates ``grid`` (W, K): ``least_loss``'s totals (loss plus
    pseudo-cells, ``pooled_loss``), each candidate weighted by exp(-(its total - the least) / (``soft_cells`` x the least total per
    cell)), so that candidates within a few cells' worth of loss of the best share the choice; 0: the best alone."""
    if not soft_cells:
        return grid[least_loss(loss, cells, columns, prior_cells)]
    total = pooled_loss(loss, cells, columns, prior_cells)  # (W, F)
    least = total.min(0).values  # (F,)
    scale = soft_cells * least / (cells + prior_cells).clamp(min=1)  # (F,)
    logits = -(total - least) / scale.clamp(min=1e-300)
    share = torch.softmax(torch.where(torch.isfinite(logits), logits, -torch.inf), 0)  # (W, F)
    return share.T @ grid.to(share.dtype)


def choose_weights(x: torch.Tensor, hold: torch.Tensor, is_cat: torch.Tensor, global_est: tuple, local_est: tuple,
                   grid: tuple[float, ...] = WEIGHT_GRID, prior_cells: int = WEIGHT_PRIOR_CELLS) -> torch.Tensor:
    """Per-column weights (F,) of the local estimate in (1 - w) global + w local, chosen on held-out observed
    cells ``hold`` (N, F) whose true values x (N, F) (level codes for categorical columns) are known.

    Each estimate is (values (N, F), class probabilities (N, F, C)). A numeric column's loss at w is its held
    cells' squared error, a categorical column's their log loss; each column takes the grid value of least
    loss plus ``prior_cells`` pseudo-cells of the mean loss per cell of all columns of its type (a column with
    few held cells follows the table). 0 where a column has no held cell.
    """
    w = torch.as_tensor(grid, dtype=torch.float64, device=x.device)[:, None, None]  # (W, 1, 1)
    values = (1 - w) * global_est[0].double() + w * local_est[0].double()  # (W, N, F)
    num_loss = (values - x.double()) ** 2
    codes = torch.where(is_cat[None, :], x, 0).round().long().clamp(min=0)
    p_true = [est[1].double().gather(-1, codes[..., None].clamp(max=est[1].shape[-1] - 1))[..., 0]
              for est in (global_est, local_est)]
    cat_loss = -((1 - w) * p_true[0] + w * p_true[1]).clamp(min=1e-12).log()
    loss = torch.where(is_cat[None, None, :], cat_loss, num_loss)
    loss = torch.where(hold[None], loss, 0.0).sum(1)  # (W, F)
    cells = hold.sum(0).double()  # (F,)
    weights = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    for kind in (is_cat, ~is_cat):
        cols = kind & (cells > 0)
        if not bool(cols.any()):
            continue
        weights[cols] = w[:, 0, 0][least_loss(loss, cells, cols, prior_cells)[cols]]
    return weights
