"""A kernel ridge regression of each numeric column on the row's other numeric cells: a nonlinear estimate the
point estimate's blend may take (``inference.input_weights``), computed at inference only.

Why: on tables of few missing cells a random forest per column (MissForest) reads smooth nonlinear relations that
neither the network's Gaussian input (linear) nor its nearest-rows input (local averages) carry, and the network
does not learn them past its inputs. A Gaussian-kernel ridge regression does, in closed form, on the same context.

Definitions (standardized numeric columns): every unknown cell of the table is first filled with the Gaussian
conditional mean (the network's input); for column j, the features of a row are its other numeric columns so
filled, mapped by ``FEATURES`` random Fourier features of a Gaussian kernel whose squared bandwidth is the median
squared distance between rows (over at most ``BANDWIDTH_ROWS`` of them), next to the columns themselves (a linear
part, so that rows far from the key rows are extrapolated linearly); the ridge regression is fitted on the key
rows that know column j, its penalty chosen from ``PENALTIES`` by exact leave-one-out error, and predicts column j
in every row. Columns are fitted in batches of ``COLUMN_BATCH``. Seeded: the same table gets the same estimate.
"""

from __future__ import annotations

import math

import torch

FEATURES = 64
PENALTIES = (0.01, 0.1, 1.0, 10.0)
BANDWIDTH_ROWS = 200
MIN_ROWS = 10  # a column known in fewer key rows gets no estimate (the filled value)
COLUMN_BATCH = 8


def kernel_estimates(filled: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor, key_rows: torch.Tensor,
                     seed: int = 0) -> torch.Tensor:
    """(N, F) estimates of every numeric cell with unknown cells in its column: ``filled`` (N, F) (known cells as
    they are, the others the Gaussian estimate) where known or where no regression is fitted; categorical columns
    as filled. ``key_rows`` (K,): the rows a regression is fitted on."""
    out = filled.clone()
    numeric = (~is_cat).nonzero().squeeze(1)
    if len(numeric) < 2:
        return out
    z = filled[:, numeric].double()  # (N, D)
    keyed = torch.zeros(len(z), dtype=torch.bool, device=z.device)
    keyed[key_rows] = True
    train = known[:, numeric] & keyed[:, None]  # (N, D)
    todo = ((~known[:, numeric]).any(0) & (train.sum(0) >= MIN_ROWS)).nonzero().squeeze(1)
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(len(numeric), z.shape[1], FEATURES, generator=g, dtype=torch.float64).to(z.device)
    b = (2 * math.pi * torch.rand(len(numeric), 1, FEATURES, generator=g, dtype=torch.float64)).to(z.device)
    sample = z[key_rows[:BANDWIDTH_ROWS]]
    diff = (sample[:, None, :] - sample[None, :, :]).square()  # (S, S, D)
    for start in range(0, len(todo), COLUMN_BATCH):
        cols = todo[start : start + COLUMN_BATCH]  # (C,)
        others = torch.ones(len(cols), z.shape[1], dtype=torch.float64, device=z.device)
        others[torch.arange(len(cols)), cols] = 0.0  # a column is not its own feature
        distances = diff @ others.T  # (S, S, C)
        bandwidth = torch.stack([d[d > 0].median() if bool((d > 0).any()) else d.new_tensor(1.0)
                                 for d in distances.unbind(-1)])  # (C,)
        scale = others[:, :, None] / torch.sqrt(bandwidth / 2)[:, None, None]  # (C, D, 1)
        linear = others / math.sqrt(max(z.shape[1] - 1, 1))  # (C, D)
        rows = train[key_rows][:, cols].T.double()  # (C, K): the key rows that know each column
        p = _features(z[key_rows], w[cols], scale, b[cols], linear) * rows[..., None]  # (C, K, M + D)
        y = z[key_rows][:, cols].T  # (C, K)
        count = rows.sum(1)
        mean = (y * rows).sum(1) / count
        yc = (y - mean[:, None]) * rows
        eig, u = torch.linalg.eigh(p.transpose(1, 2) @ p)  # (C, M), (C, M, M)
        pu = p @ u  # (C, K, M)
        uy = (pu * yc[..., None]).sum(1)  # (C, M)
        best, coef = None, None
        for penalty in PENALTIES:
            inv = 1 / (eig.clamp(min=0) + penalty)
            fit = pu @ (inv * uy)[..., None]  # (C, K, 1)
            leverage = (pu.square() @ inv[..., None]).clamp(max=1 - 1e-6)
            loo = (((yc[..., None] - fit) / (1 - leverage)).square().squeeze(-1) * rows).sum(1) / count  # (C,)
            c = u @ (inv * uy)[..., None]  # (C, M, 1)
            if best is None:
                best, coef = loo, c
            else:
                better = loo < best
                best, coef = torch.where(better, loo, best), torch.where(better[:, None, None], c, coef)
        for c, j in enumerate(numeric[cols].tolist()):  # each column's estimate in its unknown cells only
            unknown = (~known[:, j]).nonzero().squeeze(1)
            phi = _features(z[unknown], w[cols[c : c + 1]], scale[c : c + 1], b[cols[c : c + 1]], linear[c : c + 1])[0]
            out[unknown, j] = (mean[c] + phi @ coef[c, :, 0]).to(out.dtype)
    return out


def _features(z: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, b: torch.Tensor,
              linear: torch.Tensor) -> torch.Tensor:
    """(C, R, M + D) features of the rows z (R, D) for C columns: the random Fourier features (frequencies w (C, D,
    M) times ``scale`` (C, D, 1), phases b (C, 1, M)) and, times ``linear`` (C, D) (the column itself at 0, the rest
    scaled to a kernel of about the same size), the other columns themselves: far from the key rows the random
    features fade and the estimate follows the linear part, as a missing-at-random cell in a row extreme in the
    other columns needs (a kernel alone would fall back to the column mean there)."""
    fourier = math.sqrt(2 / FEATURES) * torch.cos(z[None] @ (w * scale) + b)
    return torch.cat([fourier, z[None] * linear[:, None, :]], -1)
