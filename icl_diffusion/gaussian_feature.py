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

# Inference's EM (``converged_em``): iterations stop once no entry of the fit's mean or covariance (standardized
# units) moves by more than EM_TOL, at most EM_MAX_ITERS of them. Session 26, the shipped network (trained on 10)
# on the screen's Gaussian tables (10 seeds x 9 masks): at most 20 / 30 / 50 / 100 iterations, 1.0136 / 1.0122 /
# 1.0127 / 1.0132 times the exact conditional mean's error (10: 1.0232); MAR 50% 1.083 at 30, 1.096 at 100
# (benchmarks/results/imputation.md).
EM_TOL = 1e-4
EM_MAX_ITERS = 30


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
    return clip_spectrum(cov, 1e-3 * cov.diagonal(dim1=1, dim2=2).mean(1, keepdim=True))


# ---- the spectrum clip, batched on CUDA at any size ----
#
# On CUDA, torch.linalg.eigh runs cuSOLVER's batched solver only for matrices up to 32 x 32; above, it loops
# over the batch one matrix at a time, in float32 (syevj) as in float64 (syevd) (torch's linalg_eigh_cusolver;
# a published measurement, float64, batches of 64-1024: 70-140x slower at 33 than at 32). So a float32 eigh
# would not help: above 32 on CUDA the clip is computed without eigh, from batched matrix products.

EIGH_BATCHED_MAX = 32  # the largest size cuSOLVER's batched eigh takes
SIGN_ITERATIONS = 60  # Newton-Schulz steps: worst-case error ~0.25 * 1.5^-60 ||M|| = 7e-12 ||M|| (below)


def eigh_batches(cov: torch.Tensor) -> bool:
    """Whether torch.linalg.eigh runs a batch of matrices like ``cov`` without a per-matrix loop."""
    return cov.device.type != "cuda" or cov.shape[-1] <= EIGH_BATCHED_MAX


def clip_spectrum(cov: torch.Tensor, floor: torch.Tensor, by_eigh: bool | None = None) -> torch.Tensor:
    """Symmetric matrices cov (B, E, E) with every eigenvalue below floor (B, 1) raised to it, eigenvectors
    kept. ``by_eigh``: through torch.linalg.eigh (default on the CPU, where LAPACK has no cliff, and on CUDA
    up to EIGH_BATCHED_MAX), else as cov + (floor I - cov)_+ with the positive part from the matrix sign
    function (``positive_part``: batched products only, no host read); they agree to ~1e-11 of ||cov||_F."""
    if by_eigh is None:
        by_eigh = eigh_batches(cov)
    if by_eigh:
        evals, evecs = torch.linalg.eigh(cov)
        return (evecs * evals.clamp(min=floor)[:, None, :]) @ evecs.transpose(1, 2)
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    return cov + positive_part(floor[..., None] * eye - cov)


def positive_part(M: torch.Tensor, iterations: int = SIGN_ITERATIONS) -> torch.Tensor:
    """(M + |M|) / 2 of symmetric matrices M (..., E, E): every eigenvalue x becomes max(x, 0).

    |M| = M sign(M), and sign(M) is the limit of the Newton-Schulz iteration X <- X (3I - X^2) / 2 (Higham,
    Functions of Matrices, ch. 5) from X0 = M / b, b >= ||M||_2 (the smaller of the Frobenius and the
    max-column-sum norms), which maps each eigenvalue x / b in [-1, 1] toward sign(x): quadratically once
    |x| / b is near 1, by a factor 1.5 per step while small. An eigenvalue whose sign has not settled after
    the last step is within ~1.5^-k b of 0, so the error of max(x, 0) is at most ~0.25 * 1.5^-k b."""
    bound = torch.minimum(torch.linalg.matrix_norm(M), M.abs().sum(-2).amax(-1))
    X = M / bound.clamp(min=torch.finfo(M.dtype).tiny)[..., None, None]
    for _ in range(iterations):
        X = 1.5 * X - 0.5 * X @ (X @ X)
    MX = M @ X  # M and sign(M) commute: symmetrize the rounding away
    return 0.25 * (M + M.mT + MX + MX.mT)


def table_gaussian(
    x: torch.Tensor,
    known: torch.Tensor,
    is_cat: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    em_iters: int = 0,
    em_tol: float = 0.0,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (B, F) and covariance (B, F, F), float64, fitted to the key rows' known numeric cells.

    ``em_iters = 0`` gives the pairwise covariance and a zero mean (the columns are standardized on their
    known cells); each EM iteration replaces the unknown cells by their conditional mean and adds their
    conditional covariance, then re-estimates (with the same shrinkage toward the diagonal). With ``em_tol > 0``
    EM stops before ``em_iters`` once no entry of the mean or the covariance moves by more than ``em_tol`` in
    an iteration (``converged_em``); the check reads the device, so training leaves it off. ``init``: the mean
    (F,) and covariance (F, F) EM starts from (a fit of similar rows, e.g. ``inference.parameter_shifts``' bootstrap
    resamples of the rows it was fitted to), instead of the pairwise covariance.
    """
    if init is None:
        cov = table_covariance(x, known, is_cat, key_mask)
        mean = torch.zeros(cov.shape[:2], dtype=torch.float64, device=x.device)
    else:
        mean, cov = (v.to(x.device, torch.float64).expand(x.shape[0], *v.shape[-v.dim():]) for v in init)
    if em_iters == 0:
        return mean, cov
    w = _observed(known, is_cat, key_mask)
    if x.device.type == "cpu":  # (on CUDA, reading which tables have a known cell would make the host wait)
        active = w.flatten(1).any(1)
        if not bool(active.all()):  # a table with no known cell (an unconditional training table) keeps its start
            mean, cov = mean.clone(), cov.clone()
            if bool(active.any()):  # (RePaint's calls know no cell at all)
                mean[active], cov[active] = _em(x[active], w[active], mean[active], cov[active], em_iters, em_tol)
            return mean, cov
    return _em(x, w, mean, cov, em_iters, em_tol)


def _em(x, w, mean, cov, em_iters: int, em_tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``table_gaussian``'s EM iterations from mean (B, F) and cov (B, F, F) on the cells w (B, N, F) bool of x."""
    rows = w.any(2).double()  # (B, N): key rows with at least one known numeric cell
    n_rows = rows.sum(1, keepdim=True).clamp(min=1)  # (B, 1)
    for _ in range(em_iters):
        x_hat, cond_cov_sum = _conditional(x, w, mean, cov, row_weight=rows)
        new_mean = (x_hat * rows[..., None]).sum(1) / n_rows
        xc = (x_hat - new_mean[:, None, :]) * rows[..., None]
        scatter = xc.transpose(1, 2) @ xc + cond_cov_sum
        new_cov = _shrink(scatter / n_rows[..., None], n_rows[:, 0])
        step = max(float((new_cov - cov).abs().amax()), float((new_mean - mean).abs().amax())) if em_tol else 0.0
        mean, cov = new_mean, new_cov
        if em_tol and step <= em_tol:
            break
    return mean, cov


def converged_em(em_iters: int) -> dict:
    """``table_gaussian``'s EM settings at inference for a network trained on ``em_iters`` EM iterations: EM
    run until it converges (``EM_TOL``, at most ``EM_MAX_ITERS``), or none for a network trained on the pairwise
    fit (0). Ten iterations (the training recipes') stop far from the fixed point when half the cells are missing:
    on Gaussian 500 x 10 tables under MAR 50% the closed-form estimate alone is 1.20 times the exact conditional
    mean's error after 10, 1.08 after 30 and 1.07 after 100 (benchmarks/results/imputation.md, session 26). A
    network trained on the 10-iteration fit makes its best point estimate from a fit of at most 30 (``EM_MAX_ITERS``)."""
    return {"em_iters": max(em_iters, EM_MAX_ITERS), "em_tol": EM_TOL} if em_iters else {"em_iters": 0, "em_tol": 0.0}


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
    """Shrink off-diagonal entries toward 0 by F / (F + N), harder when rows are few compared with features
    (Ledoit-Wolf-like), at most by half.

    Zero or tiny variances (all-unknown, constant or categorical columns) become 1. Until session 23 the
    shrinkage was at least 5%, which on tables of many more rows than columns biased every conditional mean
    toward the correlated columns' common direction: on 300 x 3 tables (benchmarks/rubin_coverage.py's) the
    estimate's slope of y on x1 was 0.90 against the data's 0.98 (0.97 without the floor), and a regression
    coefficient fitted on the multiple imputations was shrunk with it; the shipped network on the floorless
    input: Gaussian tables 1.023 -> 1.014 times the exact conditional mean's error, real tables 0.7934 -> 0.7924
    (benchmarks/results/imputation.md, session 23).
    """
    n_features = cov.shape[-1]
    var = cov.diagonal(dim1=1, dim2=2)
    var = torch.where(var > 1e-6, var, torch.ones_like(var))
    lam = (n_features / (n_features + n_rows)).clamp(max=0.5)[:, None, None]
    off = cov - torch.diag_embed(cov.diagonal(dim1=1, dim2=2))
    return (1 - lam) * off + torch.diag_embed(var)


# ---- Cholesky factors without host syncs ----
#
# torch.linalg.cholesky, torch.cholesky_solve (batched, on CUDA through MAGMA) and torch.cholesky_inverse read
# their status codes on the host, so each call makes the host wait for the device. The helpers below compute
# the same numbers (bit for bit on CPU) from status codes that stay on the device.


def _cholesky(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower Cholesky factors of a batch of matrices (..., n, n) and whether each factorization succeeded
    (..., ) bool. The matrices here are positive definite by construction (clipped spectrum, shrinkage toward
    the diagonal, a ridge); a factorization that fails anyway (rounding) gives the identity, so the step goes
    on with a finite, cruder estimate where torch.linalg.cholesky would have stopped the run."""
    L, info = torch.linalg.cholesky_ex(A)
    ok = info == 0
    return torch.where(ok[..., None, None], L, torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)), ok


def _factor_rows(A: torch.Tensor, m: torch.Tensor, xc: torch.Tensor):
    """``_cholesky`` of each row's known-block matrix A (B, N, F, F); a row whose factorization failed counts as
    having no known cell (its known flags m and centred values xc (B, N, F) zeroed), so its estimate is the
    fitted mean. Returns (L, m, xc)."""
    L, ok = _cholesky(A)
    return L, torch.where(ok[..., None], m, 0.0), torch.where(ok[..., None], xc, 0.0)


def _cholesky_solve(b: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """A^-1 b from A's lower Cholesky factor L: two triangular solves, as LAPACK's potrs does (the same bits
    as torch.cholesky_solve on CPU)."""
    return torch.linalg.solve_triangular(L.mT, torch.linalg.solve_triangular(L, b, upper=False), upper=True)


def _cholesky_inverse(L: torch.Tensor) -> torch.Tensor:
    """A^-1 from A's lower Cholesky factor L: on CPU torch.cholesky_inverse (LAPACK potri: the recorded
    reference outputs stay bit for bit), elsewhere ``_inverse_by_solves``."""
    return torch.cholesky_inverse(L) if L.device.type == "cpu" else _inverse_by_solves(L)


def _inverse_by_solves(L: torch.Tensor) -> torch.Tensor:
    """inv(L)^T inv(L) from one triangular solve: A^-1 up to rounding, with no status read on the host."""
    eye = torch.eye(L.shape[-1], dtype=L.dtype, device=L.device).expand_as(L)
    inv_l = torch.linalg.solve_triangular(L, eye, upper=False)
    return inv_l.mT @ inv_l


def _conditional(x, w, mean, cov, row_weight: torch.Tensor | None = None):
    """Per-row conditional mean (B, N, F) of all cells given the cells in w; with ``row_weight`` (B, N)
    also the weighted sum over rows of the conditional covariances (B, F, F), else None.

    With P = diag(w), A = P cov P + (I - P) equals cov_KK on the known block and the identity elsewhere
    (symmetric positive definite). E[x | x_K] = mean + cov A^-1 (x - mean)_K and Cov[x | x_K] =
    cov - cov P A^-1 P cov, so the sum over rows is cov (sum_r P A^-1 P) cov subtracted from the weighted
    sum of cov: one inverse per row (from A's Cholesky factor L) and two products per table. (Until session 33
    the sum was W^T W over every row at once, W = L^-1 P cov: a triangular solve with F right-hand sides per
    row and a product over all rows, 2.8 F^3 per row against 1 F^3; EM's iterations were 57% of a training
    step's time.)
    """
    m = w.double()
    xc = torch.where(w, x.double() - mean[:, None, :], torch.zeros_like(m))
    A = cov[:, None] * (m[..., :, None] * m[..., None, :])
    A.diagonal(dim1=-2, dim2=-1).add_(1 - m)  # in place: A is (B, N, F, F), the largest tensor of a training step
    L, m, xc = _factor_rows(A, m, xc)
    z = _cholesky_solve(xc[..., None], L)  # (B, N, F, 1), zero at unknown cells
    x_hat = mean[:, None, :] + (cov[:, None] @ z).squeeze(-1)
    if row_weight is None:
        return x_hat, None
    inverse = _cholesky_inverse(L).mul_(m[..., :, None]).mul_(m[..., None, :])  # (B, N, F, F): P A^-1 P
    inverse_sum = torch.einsum("bn,bnij->bij", row_weight.double(), inverse)
    return x_hat, row_weight.sum(1)[:, None, None] * cov - cov @ inverse_sum @ cov


# ---- categorical columns: one-hot indicators in the same Gaussian fit ----
#
# A categorical column with K levels enters the fit as K 0/1 indicator columns, so known categorical cells
# inform the numeric estimates through the same covariance. Its unknown cells get class probabilities
# from the same fit, as linear discriminant analysis would compute them: under the fitted joint Gaussian,
# the known cells x_K of a row given level c are Gaussian with a level-dependent mean and a shared
# covariance, so P(c | x_K) is proportional to pi_c p(x_K | e_c) = pi_c N(e_c; m, C) / N(e_c; pi, S), with
# e_c the one-hot vector of level c, (m, C) the conditional mean and covariance of the column's indicators
# given x_K, and (pi, S) their unconditional mean and covariance. Unlike the conditional mean m itself (a
# linear-probability estimate, which masks middle classes), this is a proper posterior: log-linear in x_K.
# The indicators of one column sum to 1 (a singular block); the shrinkage toward the diagonal and a small
# ridge keep every matrix positive definite.

RIDGE = 1e-6


# A numeric column's smallest known value is a point mass (zero hours, zero spending: a hurdle) when this share
# of its known key-row cells hold it and the column has at least MASS_MIN_VALUES values (a year or a small
# count scale is discrete, not piled up); ``point_masses``.
MASS_SHARE = (0.05, 0.95)
MASS_MIN_VALUES = 5


def point_masses(x: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor,
                 key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, F): each numeric column's smallest known key-row value where a share ``MASS_SHARE`` of its known
    key-row cells (at least 2) hold it and the column has at least ``MASS_MIN_VALUES`` distinct known values, else
    NaN. Its indicator joins the Gaussian fit (``one_hot_layout``), so a category that says which side of a
    hurdle a row is on (participation <=> hours > 0) is linear in it."""
    seen = known & ~is_cat[:, None, :]
    if key_mask is not None:
        seen = seen & key_mask[:, :, None]
    ordered = torch.where(seen, x, torch.full_like(x, float("inf"))).sort(1).values  # unseen cells last
    low = ordered[:, 0]  # (B, F)
    distinct = 1 + ((ordered[:, 1:] != ordered[:, :-1]) & ordered[:, 1:].isfinite()).sum(1)
    at = (seen & (x == low[:, None, :])).sum(1)
    share = at / seen.sum(1).clamp(min=1)
    has = (share >= MASS_SHARE[0]) & (share <= MASS_SHARE[1]) & (at >= 2) & (distinct >= MASS_MIN_VALUES)
    return torch.where(has, low, torch.full_like(low, float("nan")))


def one_hot_layout(is_cat: torch.Tensor, n_classes: torch.Tensor, categorical: bool = True,
                   masses: torch.Tensor | None = None, width: int | None = None) -> dict:
    """Where each column lands in the expanded table: one slot per numeric column, one per level of a
    categorical column (none if ``categorical`` is False or it has fewer than 2 levels), and a second slot for
    a numeric column with a point mass (``masses`` (B, F), NaN: none), its indicator.

    is_cat, n_classes: (B, F). Returns src (B, E) source column, level (B, E) (-1: numeric slot, -2: point-mass
    indicator), valid (B, E) with E the largest expanded width of the batch (shorter tables are padded with
    invalid slots), and with ``masses`` mass (B, E), the value each indicator slot tests for. ``width``: that E
    when the caller knows it on the host (``one_hot_facts``); None = read from the device, which makes the host
    wait for it.
    """
    sizes = _slot_sizes(is_cat, n_classes, categorical, masses)  # (B, F)
    ends = sizes.cumsum(1)
    E = max(int(ends[:, -1].max()), 1) if width is None else width
    slot = torch.arange(E, device=is_cat.device).expand(is_cat.shape[0], E)
    src = torch.searchsorted(ends, slot.contiguous(), right=True).clamp(max=is_cat.shape[1] - 1)  # (B, E)
    level = slot - (ends - sizes).gather(1, src)
    valid = slot < ends[:, -1:]
    level = torch.where(is_cat.gather(1, src) & valid, level, torch.where(level == 1, -2, -1))
    layout = {"src": src, "level": level, "valid": valid}
    if masses is not None:
        layout["mass"] = masses.gather(1, src)
    return layout


def _slot_sizes(is_cat: torch.Tensor, n_classes: torch.Tensor, categorical: bool,
                masses: torch.Tensor | None) -> torch.Tensor:
    """Slots (B, F) of each column in ``one_hot_layout``."""
    levels = n_classes if categorical else torch.zeros_like(n_classes)
    numeric_slots = 1 if masses is None else 1 + (~masses.isnan()).long()
    return torch.where(is_cat, torch.where(levels >= 2, levels, 0), numeric_slots)


def one_hot_facts(is_cat: torch.Tensor, n_classes: torch.Tensor) -> dict[str, torch.Tensor]:
    """What ``cell_estimates`` (with ``categorical``) reads from is_cat and n_classes (B, F), as 0-d tensors for
    the caller to read on the host, where the batch is made (``training.host_facts``): ``one_hot_width``, the E of
    ``one_hot_layout`` without point masses, and ``has_levels``, whether any slot is a level (which estimate path
    runs)."""
    sizes = _slot_sizes(is_cat, n_classes, True, None)
    return {"one_hot_width": sizes.sum(1).max().clamp(min=1), "has_levels": (is_cat & (sizes > 0)).any()}


def expand_table(x: torch.Tensor, known: torch.Tensor, layout: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, F) values and known flags -> (B, N, E) with indicator columns for categorical levels (and point
    masses)."""
    B, N, _ = x.shape
    src = layout["src"][:, None, :].expand(B, N, -1)
    xs, ks = x.gather(2, src), known.gather(2, src)
    level = layout["level"][:, None, :]
    x_e = torch.where(level >= 0, (xs == level).to(x.dtype), xs)
    if "mass" in layout:
        x_e = torch.where(level == -2, (xs == layout["mass"][:, None, :]).to(x.dtype), x_e)
    return torch.where(ks, x_e, torch.zeros_like(x_e)), ks & layout["valid"][:, None, :]


def _block_diagonal(cov: torch.Tensor, block: torch.Tensor) -> torch.Tensor:
    """cov (..., E, E) restricted to ``block`` (..., E, E) bool, the identity elsewhere, plus a ridge."""
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    inside = block.diagonal(dim1=-2, dim2=-1)
    return torch.where(block, cov, torch.zeros_like(cov)) + torch.diag_embed(torch.where(inside, RIDGE, 1.0)) * eye


def _level_scores(x: torch.Tensor, w: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, layout: dict):
    """(conditional means (B, N, E) float64, as ``gaussian_estimate``; unnormalized log P(level | known cells)
    (B, N, E) at indicator slots, see the section comment): one Cholesky factor per row serves both. A known
    cell scores 0 at its level and -inf at the others; numeric and padding slots are -inf.

    x: (B, N, E) expanded values; w: (B, N, E) known; mean (B, E), cov (B, E, E) the fit.
    """
    src, level = layout["src"], layout["level"]
    is_level = level >= 0  # (B, E)
    same = (src[:, :, None] == src[:, None, :]) & is_level[:, :, None] & is_level[:, None, :]  # (B, E, E)
    m = w.double()
    xc = torch.where(w, x.double() - mean[:, None, :], torch.zeros_like(m))
    eye = torch.eye(cov.shape[-1], dtype=torch.float64, device=x.device)
    A = cov[:, None] * (m[..., :, None] * m[..., None, :]) + eye * (1 - m)[..., None]
    L, m, xc = _factor_rows(A, m, xc)
    x_hat = mean[:, None, :] + (cov[:, None] @ _cholesky_solve(xc[..., None], L)).squeeze(-1)
    W = torch.linalg.solve_triangular(L, m[..., :, None] * cov[:, None], upper=False)  # (B, N, E, E)
    unknown = ~w & is_level[:, None, :]  # (B, N, E)
    block = same[:, None] & unknown[..., :, None] & unknown[..., None, :]
    C_inv = _cholesky_inverse(_cholesky(_block_diagonal(cov[:, None] - W.transpose(-1, -2) @ W, block))[0])
    S_inv = _cholesky_inverse(_cholesky(_block_diagonal(cov, same))[0])  # (B, E, E)
    pi = mean.clamp(1e-3, 1.0)
    prior = pi.log() - (S_inv @ pi[..., None]).squeeze(-1) + 0.5 * S_inv.diagonal(dim1=-2, dim2=-1)  # (B, E)
    score = prior[:, None] + (C_inv @ x_hat[..., None]).squeeze(-1) - 0.5 * C_inv.diagonal(dim1=-2, dim2=-1)
    observed = torch.where(x > 0.5, 0.0, float("-inf")).double()  # a known level: certain
    score = torch.where(w, observed, score)
    x_hat = torch.where(w, x.double(), x_hat)  # known cells as they are, as in gaussian_estimate
    return x_hat, torch.where(is_level[:, None, :], score, torch.full_like(score, float("-inf")))


def numeric_part(est: torch.Tensor, layout: dict, n_features: int) -> torch.Tensor:
    """The numeric columns (B, N, n_features) of an expanded table (B, N, E); 0 at categorical columns."""
    B, N, _ = est.shape
    numeric = layout["valid"] & (layout["level"] == -1)
    return est.new_zeros(B, N, n_features).scatter_add_(
        2, layout["src"][:, None, :].expand(B, N, -1), torch.where(numeric[:, None, :], est, torch.zeros_like(est)))


def collapse(est: torch.Tensor, scores: torch.Tensor, layout: dict, is_cat: torch.Tensor, n_levels: int):
    """Expanded estimates and level scores (B, N, E) -> numeric estimates (B, N, F) (0 at categorical
    columns) and level probabilities (B, N, F, n_levels): the softmax of the scores over a column's levels
    (all 0 where a column has no level slots, at numeric columns and beyond a column's levels)."""
    B, N, _ = est.shape
    F = is_cat.shape[1]
    src, level = layout["src"], layout["level"]
    gauss = numeric_part(est, layout, F)
    # Index of each slot in (F, n_levels), flattened; numeric and padding slots go to a spare last entry.
    flat = torch.where(level >= 0, src * n_levels + level.clamp(min=0), F * n_levels)  # (B, E)
    filled = scores.new_full((B, N, F * n_levels + 1), float("-inf"))
    filled = filled.scatter(2, flat[:, None, :].expand(B, N, -1), scores)[..., :-1]
    filled = filled.view(B, N, F, n_levels)
    has = torch.isfinite(filled).any(-1, keepdim=True)
    probs = torch.softmax(torch.where(has, filled, torch.zeros_like(filled)), -1)
    return gauss, torch.where(has & torch.isfinite(filled), probs, torch.zeros_like(probs))


def cell_estimates(
    x: torch.Tensor,
    known: torch.Tensor,
    is_cat: torch.Tensor,
    n_classes: torch.Tensor,
    n_levels: int,
    fit: tuple[torch.Tensor, torch.Tensor] | None = None,
    key_mask: torch.Tensor | None = None,
    em_iters: int = 0,
    categorical: bool = True,
    chunk_rows: int = 256,
    point_mass: bool = False,
    one_hot: dict | None = None,
    em_tol: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """Closed-form estimates of every cell from its row's known cells under one Gaussian fitted to the key
    rows (numeric columns as they are, categorical columns one-hot).

    x: (B, N, F) standardized numbers / codes; known: (B, N, F) (padding excluded); is_cat, n_classes: (B, F).
    ``fit``: a previous call's fit on the same key rows' known cells, to skip refitting. ``em_iters``, ``em_tol``:
    ``table_gaussian``'s. ``point_mass``: numeric
    columns with a point mass in the key rows (``point_masses``) enter the fit with their indicator too.
    ``one_hot``: ``one_hot_facts(is_cat, n_classes)`` read on the host (int, bool; ``training.host_facts``), so that
    neither the expanded width nor whether it has levels is read from the device (the width still is with point
    masses: they depend on the values); None = both read here.
    Returns numeric estimates (B, N, F) float32 (known cells as they are), level probabilities
    (B, N, F, n_levels) float32 (one-hot at known cells; all 0 at numeric columns, or everywhere when
    ``categorical`` is False) and the fit (mean (B, E), cov (B, E, E), and with ``point_mass`` the masses (B, F)).
    """
    if fit is None:
        masses = point_masses(x, known, is_cat, key_mask) if point_mass else None
    else:
        masses = fit[2].expand(is_cat.shape[0], -1) if len(fit) > 2 else None  # a fit may be shared (batch 1)
    given = one_hot if categorical else None  # facts of the layout with level slots
    width = given["one_hot_width"] if given is not None and masses is None else None
    layout = one_hot_layout(is_cat, n_classes, categorical, masses, width)
    x_e, known_e = expand_table(x, known, layout)
    no_cat = torch.zeros(layout["src"].shape, dtype=torch.bool, device=x.device)
    if fit is None:
        fit = table_gaussian(x_e, known_e, no_cat, key_mask, em_iters, em_tol)
        fit = fit if masses is None else (*fit, masses)
    mean, cov = fit[:2]
    scores = torch.full(x_e.shape, float("-inf"), dtype=torch.float64, device=x.device)
    has_levels = given["has_levels"] if given is not None else bool((layout["level"] >= 0).any())
    if has_levels:  # categorical levels: estimates and scores in one pass
        est = torch.empty(x_e.shape, dtype=torch.float64, device=x.device)
        for s in range(0, x.shape[1], chunk_rows):
            rows = slice(s, s + chunk_rows)
            est[:, rows], scores[:, rows] = _level_scores(x_e[:, rows], known_e[:, rows], mean, cov, layout)
    else:
        est = gaussian_estimate(x_e, known_e, no_cat, cov, mean, chunk_rows).double()
    gauss, probs = collapse(est, scores, layout, is_cat, n_levels)
    return gauss.float(), probs.float(), fit
