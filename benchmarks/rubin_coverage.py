"""Rubin's rules on icl-diffusion's multiple imputations: does the pooled 95% interval of a regression
coefficient cover the true coefficient?

Synthetic tables with a known truth: (x1, x2) standard bivariate normal with correlation RHO,
y = B * x1 + C * x2 + N(0, 1) noise; ``--rows`` rows. ``--rate`` of the cells of x1 and of y are hidden
(x2 stays complete), exactly that many per column:

- MCAR: the hidden cells of each column drawn uniformly, independently for x1 and y.
- MAR: y goes missing more often where x2 is low; x1 goes missing, among the rows whose y is observed, more
  often where y is high (the k largest of STRENGTH * z + logistic noise, z the standardized driver). The
  missingness depends on observed cells only, but on the outcome, so complete cases are a biased sample.
- rows: x1 and y hidden together, in the same uniformly drawn rows (a block of a form skipped): each draw of a
  row's y must follow the same row's draw of x1.

``--categorical-x1``: x1 is a two-level category instead (1 where the normal draw is > 0, as a pandas Categorical
"low" / "high"; y = B * x1 + C * x2 + noise with x1 0/1, x2 correlated with the latent normal), so the draws of a
category and of a number in one row must agree: the coefficient of a category fitted on completed tables.
MICE (IterativeImputer) draws the 0/1 column as a number.

Each replication fits y ~ 1 + x1 + x2 by OLS and gives a 95% t interval of B (and C) from
- ``full data``: the table before hiding cells (the reference: ~95% by construction);
- ``complete cases``: the rows with no missing cell;
- ``single imputation``: the icl-diffusion point estimate (``transform``) treated as if it were observed;
- ``icl-diffusion MI``: K draws (``DiffusionImputer(...).sample(X, K)``, default settings: the conditional
  sampler), OLS on each, pooled by ``rubin_pool`` (Barnard-Rubin df with n - 3 complete-data df);
- ``MICE MI``: the same pooling over K IterativeImputer(sample_posterior=True) draws (as benchmarks/draws.py).
Per method: mean estimate - truth (bias), std of the estimates over replications, mean standard error,
coverage of the 95% interval (Monte Carlo error ~ sqrt(0.95 * 0.05 / reps)) and its mean width.

    python benchmarks/rubin_coverage.py                       # 100 replications, K = 10: ~10 min CPU, 1 thread
    python benchmarks/rubin_coverage.py --reps 10 --k 5       # a quick look
    python benchmarks/rubin_coverage.py --no-calibrate-spread # the draws as the sampler makes them
    python benchmarks/rubin_coverage.py --no-couple-draws     # a row's draws left uncoupled
    python benchmarks/rubin_coverage.py --categorical-x1 --mechanisms mcar,rows  # a category's coefficient
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/rubin_coverage.py`
from benchmarks.common import _hide_top, _logistic_noise, markdown_table, resolve_checkpoint, timed
from benchmarks.draws import mice_draws
from icl_diffusion import DiffusionImputer, rubin_pool

B, C, RHO = 1.0, 0.5, 0.5  # true coefficients of x1 and x2; correlation of x1 and x2
STRENGTH = 2.0  # MAR: logistic slope on the standardized driver (as benchmarks/common.py's MAR_STRENGTH)
COLUMNS = ["y", "x1", "x2"]
METHODS = ("full data", "complete cases", "single imputation", "icl-diffusion MI", "MICE MI")


def simulate(n: int, mechanism: str, rate: float, rng: np.random.Generator,
             categorical_x1: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(complete table (n, 3) with columns y, x1, x2; the same with hidden cells as NaN). ``categorical_x1``:
    x1 is 0/1 (the normal draw > 0)."""
    x = rng.multivariate_normal([0, 0], [[1, RHO], [RHO, 1]], n)
    if categorical_x1:
        x[:, 0] = x[:, 0] > 0
    y = B * x[:, 0] + C * x[:, 1] + rng.normal(size=n)
    full = np.column_stack([y, x])
    k = round(rate * n)
    if mechanism == "mcar":
        hide_y, hide_x1 = (np.isin(np.arange(n), rng.choice(n, k, replace=False)) for _ in range(2))
    elif mechanism == "rows":
        hide_y = hide_x1 = np.isin(np.arange(n), rng.choice(n, k, replace=False))
    else:
        z = (full - full.mean(0)) / full.std(0)
        hide_y = _hide_top(-STRENGTH * z[:, 2] + _logistic_noise(rng, n), k)
        score = STRENGTH * z[:, 0] + _logistic_noise(rng, n)
        hide_x1 = _hide_top(np.where(hide_y, -np.inf, score), k)
    masked = full.copy()
    masked[hide_y, 0] = np.nan
    masked[hide_x1, 1] = np.nan
    return full, masked


def ols(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(coefficients of x1 and x2 (2,), their variances (2,), residual df) of y ~ 1 + x1 + x2."""
    design = np.column_stack([np.ones(len(table)), table[:, 1:]])
    coef, *_ = np.linalg.lstsq(design, table[:, 0], rcond=None)
    df = len(table) - design.shape[1]
    sigma2 = np.sum((table[:, 0] - design @ coef) ** 2) / df
    return coef[1:], sigma2 * np.diag(np.linalg.inv(design.T @ design))[1:], df


def t_interval(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, standard error, low, high) of the two slopes, 95% t interval."""
    coef, var, df = ols(table)
    half = stats.t.ppf(0.975, df) * np.sqrt(var)
    return coef, np.sqrt(var), coef - half, coef + half


def pooled(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The same from K completed tables (K, n, 3) by Rubin's rules."""
    fits = [ols(d) for d in draws]
    pool = rubin_pool([f[0] for f in fits], [f[1] for f in fits], df_complete=fits[0][2])
    return pool.estimate, np.sqrt(pool.total), pool.ci_low, pool.ci_high


def as_frame(table: np.ndarray) -> pd.DataFrame:
    """The table with x1 as a two-level category ("low" / "high"; NaN stays missing)."""
    x1 = pd.Categorical(np.where(table[:, 1] == 1, "high", "low"), categories=["low", "high"])
    frame = pd.DataFrame({"y": table[:, 0], "x1": x1, "x2": table[:, 2]})
    frame.loc[np.isnan(table[:, 1]), "x1"] = np.nan
    return frame


def as_array(frame: pd.DataFrame) -> np.ndarray:
    """``as_frame``'s inverse: x1 as 0/1."""
    return np.column_stack([frame["y"], (frame["x1"] == "high").astype(float), frame["x2"]]).astype(float)


def replicate(pretrained, n: int, mechanism: str, rate: float, k: int, seed: int,
              calibrate_spread: bool | None = None, couple_draws: bool | None = None,
              categorical_x1: bool = False) -> list[dict]:
    full, masked = simulate(n, mechanism, rate, np.random.default_rng(seed), categorical_x1)
    given = as_frame(masked) if categorical_x1 else masked
    back = as_array if categorical_x1 else np.asarray
    imputer = DiffusionImputer(checkpoint=pretrained, device="cpu", random_state=seed,
                               calibrate_spread=calibrate_spread, couple_draws=couple_draws).fit(given)
    runs = {
        "full data": lambda: t_interval(full),
        "complete cases": lambda: t_interval(masked[~np.isnan(masked).any(1)]),
        "single imputation": lambda: t_interval(back(imputer.transform(given))),
        "icl-diffusion MI": lambda: pooled(np.stack([back(d) for d in imputer.sample(given, n_imputations=k)])),
        "MICE MI": lambda: pooled(mice_draws(k)(masked, seed)),
    }
    rows = []
    for method, run in runs.items():
        (est, se, lo, hi), seconds = timed(run)
        for name, j, truth in (("x1", 0, B), ("x2", 1, C)):
            rows.append({"mechanism": mechanism, "method": method, "coef": name, "seed": seed, "est": est[j],
                         "se": se[j], "covered": lo[j] <= truth <= hi[j], "width": hi[j] - lo[j],
                         "error": est[j] - truth, "seconds": seconds})
    return rows


def summary(runs: pd.DataFrame, coef: str) -> str:
    rows = []
    for (mechanism, method), g in runs[runs.coef == coef].groupby(["mechanism", "method"], sort=False):
        rows.append([mechanism, method, g.error.mean(), g.est.std(), g.se.mean(), g.covered.mean(), g.width.mean(),
                     f"{g.seconds.mean():.2f}"])
    return markdown_table(["mechanism", "method", "bias", "sd of estimates", "mean SE", "coverage 95%",
                           "mean width", "s / table"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--rate", type=float, default=0.25, help="share of x1's and of y's cells hidden")
    parser.add_argument("--k", type=int, default=10, help="imputations per table")
    parser.add_argument("--reps", type=int, default=100, help="replications per mechanism")
    parser.add_argument("--mechanisms", default="mcar,mar")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--out", default="benchmarks/results/rubin_coverage.md")
    parser.add_argument("--calibrate-spread", action=argparse.BooleanOptionalAction, default=None,
                        help="icl-diffusion's per-column spread calibration (default: the checkpoint's)")
    parser.add_argument("--couple-draws", action=argparse.BooleanOptionalAction, default=None,
                        help="icl-diffusion's coupling of a row's draws (default: the checkpoint's)")
    parser.add_argument("--categorical-x1", action="store_true", help="x1 a two-level category (see above)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pretrained, described, _ = resolve_checkpoint(args.checkpoint)
    start, rows = time.perf_counter(), []
    for mechanism in args.mechanisms.split(","):
        for seed in range(args.reps):
            rows += replicate(pretrained, args.rows, mechanism, args.rate, args.k, seed, args.calibrate_spread,
                              args.couple_draws, args.categorical_x1)
        print(f"{mechanism}: {args.reps} replications, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    runs = pd.DataFrame(rows)
    command = "python benchmarks/rubin_coverage.py " + " ".join(sys.argv[1:])
    mc = np.sqrt(0.95 * 0.05 / args.reps)
    report = "\n\n".join([
        "# Rubin's rules: coverage of the pooled 95% interval of a regression coefficient",
        (f"Command: `{command.strip()}` ({datetime.date.today()}, one thread, "
         f"{time.perf_counter() - start:.0f} s). Checkpoint: {described}."),
        (f"y = {B} x1 + {C} x2 + N(0, 1), corr(x1, x2) = {RHO}"
         + (" (of the latent normal; x1 = 1 where it is > 0, a two-level category)" if args.categorical_x1 else "")
         + f", {args.rows} rows, {args.rate:.0%} of x1's and "
         f"of y's cells hidden (x2 complete), {args.reps} replications per mechanism (seed r draws the same "
         f"complete table under both mechanisms), K = {args.k} imputations; OLS y ~ 1 + x1 + x2. Monte Carlo "
         f"standard error of a 95% coverage: {mc:.3f}. Protocol: the docstring of benchmarks/rubin_coverage.py."),
        f"## Coefficient of x1 (true {B}; x1 has missing cells)", summary(runs, "x1"),
        f"## Coefficient of x2 (true {C}; x2 complete)", summary(runs, "x2"),
    ])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
