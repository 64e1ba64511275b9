"""What users of multiple imputation check: imputed vs observed distributions, and Rubin's rules.

- ``plot_imputations``: one panel per column with missing cells; the density of the observed values (thick)
  against the density of the imputed cells of each draw (thin), as R's mice ``densityplot`` and miceforest's
  ``plot_imputed_distributions``; categorical columns get level frequencies, observed vs imputed.
- ``rubin_pool``: pools an estimate computed on each of the K completed tables (Rubin 1987) with the
  Barnard-Rubin (1999) small-sample degrees of freedom, as mice's ``pool``.

matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

OBSERVED, IMPUTED = "tab:blue", "tab:red"


@dataclass
class RubinPool:
    """Pooled estimate(s) over K completed-data analyses; every field has the estimates' shape (P,) or ().

    estimate: mean of the K estimates (Q bar). within: mean of the K variances (U bar). between: variance of
    the K estimates (B, ddof 1). total: T = U bar + (1 + 1/K) B, the variance of ``estimate``. df: degrees
    of freedom of the t reference distribution. riv: relative increase in variance (1 + 1/K) B / U bar.
    fmi: fraction of missing information. ci_low, ci_high: the (1 - alpha) confidence interval.
    """

    estimate: np.ndarray
    within: np.ndarray
    between: np.ndarray
    total: np.ndarray
    df: np.ndarray
    riv: np.ndarray
    fmi: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def rubin_pool(estimates, variances, df_complete: float = np.inf, alpha: float = 0.05) -> RubinPool:
    """Rubin's rules over K analyses of K imputed tables.

    Args:
        estimates: (K,) or (K, P): the estimate of each of P quantities (e.g. regression coefficients) on
            each completed table.
        variances: the same shape: their squared standard errors (the diagonal of each fit's covariance).
        df_complete: degrees of freedom the analysis would have without missing data (OLS: rows minus
            coefficients); inf (default) gives Rubin's large-sample df (K - 1) / lambda^2.
        alpha: the interval is the central 1 - alpha one.
    """
    q = np.asarray(estimates, dtype=np.float64)
    u = np.asarray(variances, dtype=np.float64)
    if q.shape != u.shape or q.ndim not in (1, 2) or len(q) < 2:
        raise ValueError(f"estimates and variances must have the same shape (K,) or (K, P) with K >= 2, got "
                         f"{q.shape} and {u.shape}")
    if (u < 0).any() or not (np.isfinite(q).all() and np.isfinite(u).all()):
        raise ValueError("estimates must be finite and variances finite and >= 0")
    k = len(q)
    qbar, ubar, b = q.mean(0), u.mean(0), q.var(0, ddof=1)
    t = ubar + (1 + 1 / k) * b
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(t > 0, (1 + 1 / k) * b / t, 0.0)  # share of the variance due to missing data
        riv = lam / (1 - lam)
        df_old = (k - 1) / lam**2  # Rubin (1987); inf when the draws agree
        df_obs = np.inf
        if np.isfinite(df_complete):
            df_obs = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - lam)
        df = 1 / (1 / df_old + 1 / df_obs)  # Barnard & Rubin (1999): = df_old when df_complete is inf
    fmi = (riv + 2 / (df + 3)) / (1 + riv)
    half = stats.t.ppf(1 - alpha / 2, df) * np.sqrt(t)
    return RubinPool(qbar, ubar, b, t, df, riv, fmi, qbar - half, qbar + half)


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(f"plotting imputations needs matplotlib (pip install matplotlib): {err}") from None
    return plt


def _as_frame(table) -> pd.DataFrame:
    return table if isinstance(table, pd.DataFrame) else pd.DataFrame(np.asarray(table))


def _density(ax, values: np.ndarray, grid: np.ndarray, **style) -> None:
    """Gaussian kernel density of ``values`` on ``grid``; a vertical line where all values are one."""
    if len(np.unique(values)) > 1:
        ax.plot(grid, stats.gaussian_kde(values)(grid), **style)
    else:
        ax.axvline(values[0], **style)


def _floats(col: pd.Series) -> np.ndarray:
    return pd.to_numeric(col).to_numpy(dtype=np.float64)  # datetimes: nanoseconds


def _plot_numeric(ax, observed: np.ndarray, draws: list[np.ndarray]) -> None:
    values = np.concatenate([observed, *draws])
    lo, hi = values.min(), values.max()
    pad = 0.1 * (hi - lo) or 1.0
    grid = np.linspace(lo - pad, hi + pad, 200)
    for d in draws:
        _density(ax, d, grid, color=IMPUTED, lw=0.8, alpha=0.6)
    _density(ax, observed, grid, color=OBSERVED, lw=2.2)
    ax.set_ylabel("density")


def _plot_categorical(ax, observed: pd.Series, draws: list[pd.Series]) -> None:
    levels = observed.value_counts().index.tolist()
    levels += sorted({v for d in draws for v in d.unique()} - set(levels), key=str)
    share = np.array([d.value_counts(normalize=True).reindex(levels, fill_value=0).to_numpy() for d in draws])
    pos, width = np.arange(len(levels)), 0.4
    ax.bar(pos - width / 2, observed.value_counts(normalize=True).reindex(levels, fill_value=0), width,
           color=OBSERVED)
    mean = share.mean(0)  # the imputed share of each level over the draws, bars from the lowest to the highest
    ax.bar(pos + width / 2, mean, width, color=IMPUTED, alpha=0.7,
           yerr=np.maximum([mean - share.min(0), share.max(0) - mean], 0), ecolor="black", capsize=2)
    ax.set_xticks(pos, [str(v) for v in levels], rotation=45 if len(levels) > 4 else 0, ha="right"
                  if len(levels) > 4 else "center")
    ax.set_ylabel("share of cells")


def plot_imputations(X, imputations: Sequence, columns: Sequence | None = None,
                     categorical: Sequence[bool] | None = None, axes=None, ncols: int = 3,
                     figsize: tuple[float, float] | None = None):
    """Observed vs imputed distribution of each column with missing cells; returns the matplotlib Figure.

    Args:
        X: the table with its missing cells (DataFrame or 2-D array), as given to the imputer.
        imputations: the K completed copies of X (``DiffusionImputer.sample``), or one.
        columns: names (DataFrame) or positions (array) of the columns to show; default every column with
            a missing cell. Columns without one are skipped.
        categorical: (F,) bools, which columns to show as level frequencies; default: the non-numeric and
            boolean columns.
        axes: matplotlib Axes to draw in, one per panel; default a new figure with ``ncols`` panels a row.
        figsize: of the new figure (inches); default 4 x 3 per panel.

    Numeric panels: kernel density of the observed cells (blue, thick) and of each draw's imputed cells (red,
    thin). Categorical panels: share of each level among observed cells (blue) and imputed cells (red: mean
    over the draws, whiskers from the lowest to the highest draw).
    """
    plt = _pyplot()
    table = _as_frame(X)
    draws = [_as_frame(d) for d in ([imputations] if isinstance(imputations, (pd.DataFrame, np.ndarray))
                                    and np.ndim(imputations) == 2 else imputations)]
    if not draws or any(d.shape != table.shape for d in draws):
        raise ValueError(f"imputations must be completed copies of X, shape {table.shape}, got "
                         f"{[d.shape for d in draws]}")
    missing = table.isna().to_numpy()
    if categorical is None:
        categorical = [not pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t) for t in table.dtypes]
    names = list(table.columns) if columns is None else list(columns)
    unknown = [c for c in names if c not in table.columns]
    if unknown:
        raise ValueError(f"columns {unknown} are not in X (columns: {list(table.columns)})")
    shown = [table.columns.get_loc(c) for c in names if missing[:, table.columns.get_loc(c)].any()]
    if not shown:
        raise ValueError("no shown column has a missing cell: nothing was imputed")
    if axes is None:
        rows, cols = -(-len(shown) // ncols), min(ncols, len(shown))
        _, axes = plt.subplots(rows, cols, figsize=figsize or (4 * cols, 3 * rows), squeeze=False,
                                 layout="constrained")
        for ax in axes.ravel()[len(shown):]:
            ax.set_visible(False)
    axes = np.ravel(axes)
    if len(axes) < len(shown):
        raise ValueError(f"{len(shown)} columns to show but {len(axes)} axes given")
    for ax, j in zip(axes, shown):
        miss = missing[:, j]
        observed, imputed = table.iloc[~miss, j], [d.iloc[miss, j] for d in draws]
        if categorical[j]:
            _plot_categorical(ax, observed, imputed)
        else:
            _plot_numeric(ax, _floats(observed), [_floats(s) for s in imputed])
        ax.set_title(f"{table.columns[j]}: {miss.sum()} imputed x {len(draws)}", fontsize="medium")
    handles = [plt.Line2D([], [], color=OBSERVED, lw=2.2, label="observed"),
               plt.Line2D([], [], color=IMPUTED, lw=0.8, label=f"imputed ({len(draws)} draws)")]
    axes[0].legend(handles=handles, fontsize="small")
    return axes[0].figure
