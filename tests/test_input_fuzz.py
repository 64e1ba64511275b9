"""Random tables of mixed column kinds through ``DiffusionImputer`` (session 48): each either gets a one-line ValueError
naming a column, or comes back whole: every observed cell as it was (same value, same Python type), no cell left
missing, every column's dtype kept. The kinds are those users hand over: floats, integers, booleans, labels,
Categoricals, dates and durations (also as Python objects, as a table built row by row holds them), nullable
integers and booleans, huge, tiny, constant, two-valued and skewed numbers. Session 48's fuzz found one failure this
way: an object column of Timestamps raised scikit-learn's TypeError.

On the tiny random-init checkpoint: only the form of the answers is checked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icl_diffusion import DiffusionImputer

pytestmark = pytest.mark.usefixtures("single_thread")

KINDS = ("float", "int", "bool", "label", "categorical", "huge", "tiny", "constant", "two_values", "skewed", "dates",
         "date_objects", "duration_objects", "nullable_int", "nullable_bool")


def _column(kind: str, n: int, rng: np.random.Generator) -> pd.Series:
    days = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D")
    return {
        "float": lambda: pd.Series(rng.normal(size=n)),
        "int": lambda: pd.Series(rng.integers(-5, 50, n)),
        "bool": lambda: pd.Series(rng.random(n) < 0.3),
        "label": lambda: pd.Series(rng.choice(["a", "b", "c", "d"], n), dtype=object),
        "categorical": lambda: pd.Series(pd.Categorical(rng.choice([10, 20, 30], n))),
        "huge": lambda: pd.Series(rng.normal(size=n) * 1e12 + 1e15),
        "tiny": lambda: pd.Series(rng.normal(size=n) * 1e-12),
        "constant": lambda: pd.Series(np.full(n, 3.5)),
        "two_values": lambda: pd.Series(rng.choice([0.0, 1.0], n)),
        "skewed": lambda: pd.Series(np.exp(rng.normal(size=n) * 3)),
        "dates": lambda: pd.Series(days),
        "date_objects": lambda: pd.Series(list(days), dtype=object),
        "duration_objects": lambda: pd.Series(list(pd.to_timedelta(rng.integers(1, 500, n), unit="min")),
                                              dtype=object),
        "nullable_int": lambda: pd.Series(pd.array(rng.integers(0, 9, n), dtype="Int64")),
        "nullable_bool": lambda: pd.Series(pd.array(rng.random(n) < 0.5, dtype="boolean")),
    }[kind]()


def _holed(col: pd.Series, hide: np.ndarray) -> pd.Series:
    """``col`` with the ``hide`` rows missing, in the dtype a user's column with holes has (bool: object, int: float)."""
    if not hide.any():
        return col
    if col.dtype == bool:
        col = col.astype(object)
    elif col.dtype.kind in "iu":
        col = col.astype(float)
    col = col.copy()
    col[hide] = None
    return col


def random_table(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([5, 12, 40, 120]))
    kinds = rng.choice(KINDS, int(rng.integers(1, 6)))
    table = {}
    for j, kind in enumerate(kinds):
        hide = rng.random(n) < rng.choice([0.0, 0.1, 0.3, 0.6])
        hide[:2] = False  # at least two observed cells: a column with fewer is refused, tested elsewhere
        table[f"c{j}_{kind}"] = _holed(_column(kind, n, rng), hide)
    df = pd.DataFrame(table)
    if not df.isna().any().any():  # something to impute
        df[df.columns[-1]] = _holed(df[df.columns[-1]], np.arange(n) == n - 1)
    return df


@pytest.mark.parametrize("seed", range(24))
def test_a_random_table_comes_back_whole_or_gets_a_one_line_error(seed, tiny_checkpoint):
    df = random_table(seed)
    try:
        out = DiffusionImputer(checkpoint=tiny_checkpoint, random_state=0).fit_transform(df)
    except ValueError as error:  # e.g. a column whose observed values are all equal but one
        assert "\n" not in str(error) and "column '" in str(error), str(error)
        return
    assert list(out.columns) == list(df.columns) and len(out) == len(df)
    for name in df.columns:
        seen = df[name].notna().to_numpy()
        assert out[name].dtype == df[name].dtype, name
        assert not out[name].isna().any(), name
        before, after = df[name].astype(object)[seen], out[name].astype(object)[seen]
        assert all(type(a) is type(b) and a == b for a, b in zip(before, after)), name
