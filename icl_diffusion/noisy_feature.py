"""The exact Gaussian denoiser of the noisy table, fed to the denoiser as an input feature.

Why: the linear-Gaussian feature (gaussian_feature.py) conditions on the known cells only. It cannot help
where the network must read the noisy cells themselves:
- RePaint (``known`` all False): every cell is noisy, so that feature sees nothing, and the network never
  learned a joint model of the table without it;
- intermediate noise levels of any sampler: x_t already says much about x0 there, and the network's own
  reading of it is biased (issue 14: draws' means +0.07 sd above the exact conditional mean).

At step t, a numeric cell the network fills holds x_t = sqrt(a) x0 + sqrt(1 - a) eps (a = alphas_cumprod[t]):
y = x_t / sqrt(a) observes x0 with noise variance v = (1 - a) / a. A known cell observes x0 exactly (v = 0);
an absorbed categorical cell observes nothing. Under a Gaussian N(mean, cov) of a row, the exact posterior
of the row given those observations has

    E[x0 | obs] = mean + cov_{., O} (cov_{O, O} + D)^-1 (y - mean)_O,    D = diag(v at noisy cells, 0 at known)

and the posterior variance of each cell; both are the feature. At t = T-1 (v huge) the mean is the
linear-Gaussian feature's conditional mean, at t = 0 it is x_t itself, and in between it weighs x_t exactly
as much as it deserves under the fit.

The Gaussian is the linear-Gaussian feature's fit to the key rows' known cells, categorical columns as their
levels' indicators: a known categorical cell is observed exactly (its indicators), an unknown one observes
nothing (marginalized); a point mass's indicator slot is marginalized. (Until session 34 every categorical
column was marginalized, to keep the per-row solve at (numeric columns)^3: then in the conditional mode at
t = T the feature's mean ignored the known categories that the linear-Gaussian feature conditions on, and a
network trained to trust it predicted worse wherever categories carry the signal: Carseats' Sales given its
shelf location, R^2 0.823 with stage 50b's network against the shipped one's 0.849; 0.850 with the fix.) A table with no known cell among its key rows (RePaint) has nothing to fit from, so its
Gaussian comes from the noisy key rows' own moments: Cov(y) = cov + v I, so cov = Cov(y) - v I with the
spectrum clipped to be positive definite (near t = T that leaves the mean: nothing is known yet).
"""

from __future__ import annotations

import torch

from .gaussian_feature import (
    _cholesky,
    _cholesky_solve,
    clip_spectrum,
    expand_table,
    numeric_part,
    one_hot_layout,
)

MIN_VAR = 1e-4  # floor of the posterior variance (its log is the feature)


def noisy_cells(known: torch.Tensor, is_cat: torch.Tensor, col_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, N, F) the numeric cells holding x_t: unknown, not categorical, not padding."""
    noisy = ~known & ~is_cat[:, None, :]
    return noisy if col_mask is None else noisy & col_mask[:, None, :]


def denoised_estimates(
    x: torch.Tensor,
    known: torch.Tensor,
    noisy: torch.Tensor,
    is_cat: torch.Tensor,
    n_classes: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    t: torch.Tensor,
    fit: tuple[torch.Tensor, torch.Tensor],
    keys: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    key_mask: torch.Tensor | None = None,
    categorical: bool = True,
    chunk_rows: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean (B, N, F) and log posterior variance (B, N, F) of every numeric cell (0 and 0 at
    categorical columns), float32.

    x: (B, N, F) the network's input values; known: (B, N, F) cells given exactly; noisy: (B, N, F) numeric
    cells holding x_t (unknown, not padding); is_cat, n_classes: (B, F); t: (B,) original steps;
    fit: the linear-Gaussian feature's (mean (B, E), cov (B, E, E)[, point masses (B, F)]) on the same layout;
    its numeric and level slots are the Gaussian used (a point mass's indicator slot marginalized out).
    keys: the key rows (values, known, noisy) when ``x`` holds query rows only (the moments of a table with no
    known key cell come from its key rows), else the key rows are the rows of ``x`` (``key_mask`` (B, N)).
    """
    layout = one_hot_layout(is_cat, n_classes, categorical)  # numeric and level slots, no point-mass indicator
    a = alphas_cumprod.to(t.device)[t.long()].double()  # (B,)
    masses = fit[2].expand(is_cat.shape[0], -1) if len(fit) > 2 else None  # a fit may be shared (batch 1)
    fit_layout = one_hot_layout(is_cat, n_classes, categorical, masses, width=fit[0].shape[-1])
    mean, cov = _without_indicators(fit, fit_layout, layout["src"].shape[1])
    kx, kk, kn = keys if keys is not None else (x, known, noisy)
    in_keys = key_mask[..., None] if keys is None and key_mask is not None else True
    no_known = ~(kk & in_keys).flatten(1).any(1)
    if bool(no_known.any()):
        m0, c0 = _noisy_moments(kx, kn & in_keys, layout, a)
        mean = torch.where(no_known[:, None], m0, mean)
        cov = torch.where(no_known[:, None, None], c0, cov)
    B, N, F = x.shape
    post_mean = torch.empty(B, N, layout["src"].shape[1], dtype=torch.float64, device=x.device)
    post_var = torch.empty_like(post_mean)
    for s in range(0, N, chunk_rows):
        r = slice(s, s + chunk_rows)
        post_mean[:, r], post_var[:, r] = _posterior(x[:, r], known[:, r], noisy[:, r], layout, mean, cov, a)
    return (numeric_part(post_mean, layout, F).float(),
            numeric_part(post_var.clamp(min=MIN_VAR).log(), layout, F).float())


def _without_indicators(fit, layout, width: int):
    """The fit's mean (B, width) and covariance (B, width, width) without its point-mass indicator slots, the
    other slots (numeric and level) in their order: the marginal over the slots of ``one_hot_layout`` without
    masses, whose width is ``width`` (a shorter table's spare slots are never observed)."""
    kept = (layout["level"] != -2) & layout["valid"]
    B = kept.shape[0]
    mean, cov = fit[0].double().expand(B, -1), fit[1].double().expand(B, -1, -1)  # a fit may be shared (1)
    order = torch.argsort((~kept).to(torch.int8), dim=1, stable=True)[:, :width]  # kept slots first, in order
    rows = cov.gather(1, order[:, :, None].expand(-1, -1, cov.shape[-1]))
    return mean.gather(1, order), rows.gather(2, order[:, None, :].expand(-1, width, -1))


def _observations(x, known, noisy, layout):
    """Expanded values (B, N, E): known cells as they are (indicators for levels), noisy numeric cells' x_t;
    which slots are observed, and which of those are noisy."""
    x_e, known_e = expand_table(x, known, layout)
    src = layout["src"][:, None, :].expand(*x.shape[:2], -1)
    numeric = (layout["level"] < 0) & layout["valid"]
    noisy_e = noisy.gather(2, src) & numeric[:, None, :] & ~known_e
    y = torch.where(noisy_e, x.gather(2, src), x_e).double()
    return y, known_e | noisy_e, noisy_e


def _noisy_moments(x, noisy, layout, a):
    """(mean (B, E), cov (B, E, E)) of x0 from noisy cells alone (``noisy`` limited to key rows).

    E[x_t] = sqrt(a) mean and Cov(x_t) = a cov + (1 - a) I. Their sample versions are off by ~1/sqrt(n) (n
    rows), which next to a signal of size a is noise near t = T: the estimates are shrunk toward the
    standardized columns' N(0, I) with weight a sqrt(n) / (a sqrt(n) + 1). Slots with no noisy cell
    (categorical levels) keep N(0, 1), uncorrelated."""
    y, _, noisy_e = _observations(x, torch.zeros_like(noisy), noisy, layout)
    w = noisy_e.double()
    n = w.sum(1)  # (B, E)
    mean_t = (y * w).sum(1) / n.clamp(min=1)
    yc = (y - mean_t[:, None]) * w
    cov_t = (yc.transpose(1, 2) @ yc) / (w.transpose(1, 2) @ w).clamp(min=2)
    eye = torch.eye(cov_t.shape[-1], dtype=cov_t.dtype, device=cov_t.device)
    signal = clip_spectrum(cov_t - (1 - a)[:, None, None] * eye, 1e-3 * a[:, None])  # a cov
    reliability = a * n.max(1).values.sqrt()
    weight = (reliability / (reliability + 1))[:, None]
    seen = n > 0
    both = seen[:, :, None] & seen[:, None, :]
    cov = torch.where(both, weight[..., None] * signal / a[:, None, None] + (1 - weight[..., None]) * eye, eye)
    mean = torch.where(seen, weight * mean_t / a.sqrt()[:, None], 0.0)
    return mean, cov


def _posterior(x, known, noisy, layout, mean, cov, a):
    """Per-row posterior mean and variance (B, N, E) given the observations (see the module's docstring).

    An observed slot j reads g_j x0_j + noise of variance d_j: g = 1, d = 0 when known; g = sqrt(a),
    d = 1 - a when noisy. With G = diag(g) on the observed slots (0 elsewhere), A = G cov G + diag(d) (+ the
    identity on unobserved slots) is positive definite at every t, and E[x0 | obs] = mean + cov G A^-1
    (y - G mean), Var = diag(cov - cov G A^-1 G cov)."""
    y, obs, noisy_e = _observations(x, known, noisy, layout)
    sa = a.sqrt()[:, None, None]
    g = torch.where(noisy_e, sa, obs.double())  # (B, N, E): sqrt(a), 1, or 0 (unobserved)
    d = torch.where(noisy_e, 1 - sa**2, torch.where(obs, 0.0, 1.0)).double()
    A = cov[:, None] * (g[..., :, None] * g[..., None, :]) + torch.diag_embed(d)
    L, _ = _cholesky(A)
    resid = (y - g * mean[:, None]) * obs
    post_mean = mean[:, None] + (cov[:, None] @ (g * _cholesky_solve(resid[..., None], L).squeeze(-1))[..., None]).squeeze(-1)
    W = torch.linalg.solve_triangular(L, g[..., :, None] * cov[:, None], upper=False)  # (B, N, E, E)
    post_var = cov.diagonal(dim1=1, dim2=2)[:, None] - (W * W).sum(-2)
    return post_mean, post_var
