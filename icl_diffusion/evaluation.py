"""Validation metrics that mean something: imputation error of the one-call point estimate.

- ``gaussian_ratio``: on linear-Gaussian prior tables, RMSE of the model's point estimate over the RMSE of
  the exact conditional mean (the best any imputer can do): 1.0 is optimal; column-mean imputation is the
  baseline to beat.
- ``nrmse``: RMSE over masked numeric cells in units of each column's std (computed on the complete data),
  for SCM validation tables and real tables.
- ``cat_acc``: accuracy on masked categorical cells (SCM tables), next to ``mode_cat_acc`` of the column mode.
- ``joint_slope``: whether several draws of a Gaussian table's missing cells are dependent within a row as the
  exact conditional distribution says (benchmarks/draws.py, the shipped model's quality test).
"""

from __future__ import annotations

import numpy as np
import torch

from .checkpoint import Pretrained
from .diffusion import GaussianDiffusion
from .inference import impute, one_call
from .model import Denoiser
from .scaling import CLIP, standardize


@torch.no_grad()
def point_estimate(model: Denoiser, diffusion: GaussianDiffusion, batch: dict) -> torch.Tensor:
    """The one-call point estimate of every table of a prior batch (``inference.one_call``, as the estimators
    run it; query rows are never key rows), filled in RAW units (B, N, F). Known cells are the batch's own."""
    x, known, is_cat, n_classes = batch["x"], batch["known"].bool(), batch["is_cat"].bool(), batch["n_classes"]
    x_std, mean, std = standardize(x, known, is_cat)
    query = batch.get("query")
    filled = []
    for b in range(x.shape[0]):
        keys = torch.arange(x.shape[1], device=x.device) if query is None else (~query[b].bool()).nonzero()[:, 0]
        x0, _ = one_call(model, diffusion, x_std[b], known[b], is_cat[b], n_classes[b], keys)
        filled.append(torch.where(is_cat[b], x0, x0.clamp(-CLIP, CLIP) * std[b] + mean[b]))
    return torch.where(known, x, torch.stack(filled))


def _scored(batch: dict) -> torch.Tensor:
    """Unknown cells whose true value the batch has (all unknown cells, unless ``observed`` says otherwise)."""
    observed = batch.get("observed")
    unknown = ~batch["known"].bool()
    return unknown if observed is None else unknown & observed.bool()


def cat_accuracy(filled: torch.Tensor, batch: dict) -> tuple[float, int]:
    """Share of unknown categorical cells filled with their true level, and how many there were."""
    x, is_cat = batch["x"], batch["is_cat"].bool()
    cells = _scored(batch) & is_cat[:, None, :]
    n = int(cells.sum())
    return (float((filled[cells] == x[cells]).float().mean()) if n else float("nan")), n


def _column_std(x: torch.Tensor, observed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, F) std over the complete data (or its observed cells), and whether each column varies there (a
    constant column has no scale: ``nrmse`` leaves it out)."""
    w = torch.ones_like(x) if observed is None else observed.to(x.dtype)
    n = w.sum(1, keepdim=True).clamp(min=2)
    mean = (x * w).sum(1, keepdim=True) / n
    std = (((x - mean) ** 2 * w).sum(1, keepdim=True) / (n - 1)).sqrt()
    return std.clamp(min=1e-8), std > 1e-9 * (1 + mean.abs())


def _scaled_errors(filled: torch.Tensor, batch: dict) -> torch.Tensor:
    """(H,) errors of the scored numeric cells, each in its column's complete-data std; columns that do not vary
    (a flag that is 0 in every row of this table) have no scale and are left out."""
    x, is_cat = batch["x"], batch["is_cat"].bool()
    std, varies = _column_std(x, batch.get("observed"))
    return ((filled - x) / std)[_scored(batch) & ~is_cat[:, None, :] & varies]


def nrmse(filled: torch.Tensor, batch: dict) -> float:
    """RMSE over unknown numeric cells, each column scaled by its complete-data std (``_scaled_errors``)."""
    err = _scaled_errors(filled, batch)
    return float(err.pow(2).mean().sqrt()) if err.numel() else float("nan")


def cell_losses(filled: torch.Tensor, batch: dict) -> torch.Tensor:
    """(H,) float64 loss of every scored cell, in a fixed order (so two fills of one batch pair up cell by cell):
    numeric cells' squared error in their column's std (``nrmse``'s cells), then categorical cells' error (1 for a
    wrong level, 0 for the true one)."""
    categorical = _scored(batch) & batch["is_cat"].bool()[:, None, :]
    x = batch["x"]
    return torch.cat([_scaled_errors(filled, batch).double() ** 2, (filled != x)[categorical].double()])


def mean_imputation(batch: dict) -> torch.Tensor:
    """Column-mean (numeric) / column-mode (categorical) baseline, in raw units."""
    x, known, is_cat = batch["x"], batch["known"].bool(), batch["is_cat"].bool()
    _, mean, _ = standardize(x, known, torch.zeros_like(is_cat))
    filled = mean.expand_as(x).clone()
    if is_cat.any():
        # Numeric cells count as unknown here: their values are not codes (negative, or huge).
        codes = torch.where(known & is_cat[:, None, :], x, torch.full_like(x, -1)).long() + 1  # 0 = unknown
        counts = torch.zeros(*x.shape[::2], int(codes.max()) + 1, device=x.device)  # (B, F, C+1)
        counts.scatter_add_(2, codes.transpose(1, 2), torch.ones_like(codes.transpose(1, 2), dtype=torch.float))
        mode = counts[..., 1:].argmax(-1).float()[:, None, :]  # (B, 1, F)
        filled = torch.where(is_cat[:, None, :], mode.expand_as(x), filled)
    return torch.where(known, x, filled)


def gaussian_oracle(batch: dict) -> torch.Tensor:
    """Exact conditional mean of the unknown cells of a Gaussian-family batch (raw units)."""
    from priors.gaussian import conditional_gaussian  # the prior ships the closed form

    cond_mean = conditional_gaussian(batch["mean"], batch["cov"], batch["x"], batch["known"].bool())
    cond_mean = cond_mean[0] if isinstance(cond_mean, tuple) else cond_mean
    return torch.where(batch["known"].bool(), batch["x"], cond_mean.to(batch["x"].dtype))


@torch.no_grad()
def evaluate_engine(pretrained: Pretrained, batches: list[dict], seed: int = 0,
                    losses: list[torch.Tensor] | None = None) -> dict[str, float]:
    """Validation batches imputed by the inference engine (``inference.impute``) with the checkpoint's stored
    settings, as the estimators impute a table (key-row cap, test-time ensemble and all), table by table.
    Family "user" batches (fine-tuning's validation tables) give ``user_nrmse`` / ``user_cat_acc``, Gaussian
    ones ``gaussian_ratio`` (NRMSE / the exact conditional mean's). Hidden cells never reach the engine.
    ``losses``: a list the "user" batches' ``cell_losses`` are appended to, batch by batch."""
    was_training = pretrained.model.training
    pretrained.model.eval()
    sums: dict[str, list[float]] = {}
    for batch in batches:
        x, known, is_cat = batch["x"], batch["known"].bool(), batch["is_cat"].bool()
        x_std, mean, std = standardize(torch.where(known, x, torch.zeros_like(x)), known, is_cat)
        filled = torch.stack([torch.as_tensor(impute(
            pretrained, x_std[b].numpy(), known[b].numpy(), is_cat[b].numpy(), batch["n_classes"][b].numpy(),
            seed=seed)[0]) for b in range(len(x))]).to(x.dtype)
        filled = torch.where(is_cat[:, None, :], filled, filled * std + mean)
        fam = batch.get("family", "user")
        if fam == "gaussian":
            sums.setdefault("gaussian_ratio", []).append(nrmse(filled, batch) / nrmse(gaussian_oracle(batch), batch))
            continue
        sums.setdefault(f"{fam}_nrmse", []).append(nrmse(filled, batch))
        acc, n_cat = cat_accuracy(filled, batch)
        if n_cat:
            sums.setdefault(f"{fam}_cat_acc", []).append(acc)
        if losses is not None and fam == "user":
            losses.append(cell_losses(filled, batch))
    pretrained.model.train(was_training)
    return {k: sum(v) / len(v) for k, v in sums.items()}


def evaluate(model: Denoiser, diffusion: GaussianDiffusion, batches: list[dict]) -> dict[str, float]:
    """Average metrics over validation batches; Gaussian batches also give the ratio to the oracle."""
    was_training = model.training
    model.eval()
    sums: dict[str, list[float]] = {}
    for batch in batches:
        filled = point_estimate(model, diffusion, batch)
        fam = batch.get("family", "scm")
        model_err, mean_err = nrmse(filled, batch), nrmse(mean_imputation(batch), batch)
        sums.setdefault(f"{fam}_nrmse", []).append(model_err)
        sums.setdefault(f"{fam}_mean_nrmse", []).append(mean_err)
        acc, n_cat = cat_accuracy(filled, batch)
        if n_cat:
            sums.setdefault(f"{fam}_cat_acc", []).append(acc)
            sums.setdefault(f"{fam}_mode_cat_acc", []).append(cat_accuracy(mean_imputation(batch), batch)[0])
        if fam == "gaussian":
            oracle_err = nrmse(gaussian_oracle(batch), batch)
            sums.setdefault("gaussian_ratio", []).append(model_err / oracle_err)
            sums.setdefault("gaussian_mean_ratio", []).append(mean_err / oracle_err)
    model.train(was_training)
    return {k: sum(v) / len(v) for k, v in sums.items()}


def conditional_cov(cov: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Covariance of the cells ``m`` (bool (F,)) given the others under N(., cov)."""
    o = ~m
    return cov[np.ix_(m, m)] - cov[np.ix_(m, o)] @ np.linalg.solve(cov[np.ix_(o, o)], cov[np.ix_(o, m)])


def joint_slope(draws: np.ndarray, missing: np.ndarray, cov: np.ndarray) -> float:
    """Slope of the correlation of two missing cells' draws (over the draws (S, N, F)) on their exact conditional
    correlation given the row's observed cells under N(., cov), over every pair of missing cells sharing a row:
    1 for draws from the exact conditional distribution, 0 for draws independent per cell (as per-cell samplers
    draw); nan with fewer than two pairs."""
    exact, got = [], []
    for i in np.flatnonzero(missing.sum(1) >= 2):
        m = missing[i]
        cond = conditional_cov(cov, m)
        sd = np.sqrt(np.diag(cond))
        upper = np.triu_indices(int(m.sum()), 1)
        exact += list((cond / sd[:, None] / sd[None, :])[upper])
        got += list(np.corrcoef(draws[:, i, m].T)[upper])
    return float(np.polyfit(exact, np.nan_to_num(got), 1)[0]) if len(exact) > 1 else float("nan")


def conditional_sds(missing: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """(N, F) sd of each missing cell given its row's observed cells under N(., cov); nan at observed cells."""
    out = np.full(missing.shape, np.nan)
    for i in np.flatnonzero(missing.any(1)):
        out[i, missing[i]] = np.sqrt(np.diag(conditional_cov(cov, missing[i])))
    return out


def spread_correlation(draws: np.ndarray, missing: np.ndarray, cov: np.ndarray) -> float:
    """Mean over columns of the correlation, across the column's missing cells, of the draws' sd (over the draws
    (S, N, F)) with the cell's exact conditional sd (``conditional_sds``): near 1 when a cell's draws are as wide
    as the row's missingness pattern leaves it uncertain, near 0 for draws of one width per column."""
    exact, got = conditional_sds(missing, cov), draws.std(0)
    corr = [np.corrcoef(exact[missing[:, j], j], got[missing[:, j], j])[0, 1]
            for j in range(missing.shape[1]) if missing[:, j].sum() >= 3]
    return float(np.nanmean(corr)) if corr else float("nan")
