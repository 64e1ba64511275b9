"""User tables <-> the model's standardized tensors, column by column.

``TablePreprocessor`` is fitted on the observed cells of a table (numpy array or pandas DataFrame) and turns
any table with the same columns into an ``EncodedTable``: standardized numeric values and categorical codes
``x (N, F) float32``, the ``known (N, F)`` mask, ``is_cat (F,)`` and ``n_classes (F,)``. ``inverse_transform``
puts imputed cells back into the caller's table: observed cells are copied from the input (bit for bit, in
their own dtype), only missing cells are decoded.

Column rules (decided at fit, from the observed values):
- numeric (int, float, nullable Int/Float, datetime/timedelta, object columns of numbers, and object/string
  columns whose every observed value is a number written as text, e.g. '25.3'): standardized with the observed
  mean and population std (as ``scaling.standardize`` does in training; any spread is a scale, a constant
  column is imputed with its value), held within +-TABLE_CLIP (the network reads it clamped to +-CLIP; the
  engine's other estimates and the imputations keep values beyond). When every observed value is an integer
  (below 2**53), imputations are rounded.
- dates and durations are numbers of their resolution: counts of the coarsest unit (day, hour, minute,
  second, ms, us, ns) that every observed value is a whole multiple of, so daily dates are imputed as whole days.
- categorical (object/string columns, pandas Categorical, bool): codes 0..C-1. Categories are the sorted
  observed levels; a pandas Categorical keeps its own order and may declare levels it does not use (the model
  chooses among the used ones, the output keeps every declared one); booleans are [False, True].
Missing markers: NaN, None, pd.NA, pd.NaT, and 'nan' in a numpy string array (how numpy writes NaN there).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse
import torch
from pandas.api.types import infer_dtype

from .scaling import TABLE_CLIP

_NUMERIC_INFERRED = {"integer", "floating", "mixed-integer-float", "decimal"}
_TEMPORAL_INFERRED = {"datetime", "datetime64", "timedelta", "timedelta64"}  # Timestamps / Timedeltas as objects
# Resolutions of dates and durations, coarsest first, in nanoseconds (pandas unit names).
_UNITS_NS = {"D": 86_400 * 10**9, "h": 3_600 * 10**9, "min": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3,
             "ns": 1}


@dataclass
class EncodedTable:
    """A table as the model sees it. x: (N, F) float32, 0 at unknown cells; known: (N, F) bool;
    is_cat: (F,) bool; n_classes: (F,) int64 (0 for numeric columns)."""

    x: np.ndarray
    known: np.ndarray
    is_cat: np.ndarray
    n_classes: np.ndarray

    def to_torch(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, ...]:
        return tuple(torch.as_tensor(a, device=device) for a in (self.x, self.known, self.is_cat, self.n_classes))


@dataclass
class ColumnSpec:
    """What fit learned about one column."""

    name: Hashable
    kind: str  # "numeric" | "categorical"
    mean: float = 0.0
    std: float = 1.0
    integer: bool = False  # numeric with integer observed values (|v| < 2**53): imputations are rounded
    temporal: str | None = None  # "datetime" | "timedelta": counts of ``unit`` since the epoch / zero
    unit: str | None = None  # temporal: the resolution, a key of _UNITS_NS
    text: str | None = None  # numbers stored as strings: format() spec of imputations ('.1f', '' = shortest)
    categories: list = field(default_factory=list)  # labels in code order (the observed ones)
    constant: bool = False  # numeric, every observed value the same: imputations are that value

    @property
    def n_classes(self) -> int:
        return len(self.categories) if self.kind == "categorical" else 0


@dataclass
class _Read:
    """One column of an input table, read: its kind and observed values."""

    kind: str  # "numeric" | "categorical" | "bool" | "empty"
    missing: np.ndarray  # (N,) bool
    values: np.ndarray  # numeric: float64 (NaN at missing); temporal: int64 ticks of ``tick``; otherwise object
    temporal: str | None = None
    tick: str | None = None  # temporal: the dtype's unit (s, ms, us, ns)
    text: str | None = None  # numbers read from strings: their format (``_text_format``)
    categories: list | None = None  # a pandas Categorical's own categories

    def numbers(self, unit: str | None = None) -> np.ndarray:
        """Numeric values as float64; temporal ones as counts of ``unit`` (exact when whole and below 2**53)."""
        if self.temporal is None:
            return self.values
        tick_ns, unit_ns = _UNITS_NS[self.tick], _UNITS_NS[unit]
        ticks = self.values.astype(np.float64)
        return ticks / (unit_ns // tick_ns) if unit_ns >= tick_ns else ticks * (tick_ns // unit_ns)

    def resolution(self) -> str:
        """Temporal: the coarsest unit every observed value is a whole multiple of."""
        ticks = self.values[~self.missing]
        tick_ns = _UNITS_NS[self.tick]
        return next(u for u, ns in _UNITS_NS.items() if ns >= tick_ns and not (ticks % (ns // tick_ns)).any())


def as_table(X) -> pd.DataFrame | np.ndarray:
    """Check the container and return a DataFrame as is, anything else as a 2-D ndarray.

    Lists and string arrays become object arrays (numpy would turn ``[[1.5, "a"]]`` into strings), lists of
    numbers and None float64 arrays (as scikit-learn's imputers return them).
    """
    if scipy.sparse.issparse(X):
        raise TypeError("sparse input is not supported: pass a dense array or a pandas DataFrame")
    if isinstance(X, pd.DataFrame):
        table = X
        if not table.columns.is_unique:
            dups = table.columns[table.columns.duplicated()].unique().tolist()
            raise ValueError(f"duplicate column names {dups}: give every column its own name")
    elif isinstance(X, pd.Series):  # sklearn expects a ValueError for 1-D input
        raise ValueError(  # noqa: TRY004
            "Expected a 2D table, got a pandas Series (1D). Reshape your data with series.to_frame() if it "
            "is a single feature."
        )
    else:
        table = np.asarray(X)
        if table.dtype.kind in "US":
            table = _strings_as_objects(X, table)
        elif table.dtype.kind == "O" and not isinstance(X, np.ndarray):
            table = _numbers_as_floats(table)
        if table.ndim != 2:
            raise ValueError(
                f"Expected a 2D table, got a {table.ndim}D array instead. Reshape your data either using "
                "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) if it "
                "contains a single sample."
            )
        if table.dtype.kind == "c":
            raise ValueError("Complex data not supported")
    n, f = table.shape
    if n == 0 or f == 0:
        what = "0 sample(s)" if n == 0 else "0 feature(s)"
        raise ValueError(f"empty table: Found array with {what} (shape=({n}, {f})) while a minimum of 1 "
                         "is required.")
    return table


def _strings_as_objects(X, strings: np.ndarray) -> np.ndarray:
    """An object array of a list that numpy made strings, or of a string array: numpy writes NaN into a string
    array as 'nan' (``np.array([[1.5, 'a'], [np.nan, 'b']])``), so those cells are missing; bytes are decoded."""
    if not isinstance(X, np.ndarray):
        return np.asarray(X, dtype=object)  # the list's own values: 1.5 stays a number, NaN stays NaN
    table = (strings.astype(str) if strings.dtype.kind == "S" else strings).astype(object)
    table[strings.astype(str) == "nan"] = np.nan
    return table


def _numbers_as_floats(table: np.ndarray) -> np.ndarray:
    """A list's object array as float64 when it holds only numbers and missing cells (``[[1.5, None]]``)."""
    missing = pd.isna(table)
    if infer_dtype(table[~missing], skipna=False) not in {"integer", "floating", "mixed-integer-float"}:
        return table
    out = np.full(table.shape, np.nan)
    try:
        out[~missing] = table[~missing].astype(np.float64)
    except OverflowError:  # an int beyond float64: the column's reader names it
        return table
    return out


def missing_mask(table: pd.DataFrame | np.ndarray) -> np.ndarray:
    """(N, F) bool: True at NaN, None, pd.NA and pd.NaT cells."""
    if isinstance(table, pd.DataFrame):
        return table.isna().to_numpy(dtype=bool)
    if table.dtype.kind == "f":
        return np.isnan(table)
    if table.dtype.kind == "O":
        return pd.isna(table)
    if table.dtype.kind in "mM":
        return np.isnat(table)
    return np.zeros(table.shape, dtype=bool)


def _label(name: Hashable, framed: bool) -> str:
    return f"column {name!r}" if framed else f"column {name}"


def _read_objects(values: np.ndarray, label: str) -> _Read:
    """An object column: numbers, strings or booleans, never a mix."""
    missing = pd.isna(values)
    obs = values[~missing]
    inferred = infer_dtype(obs, skipna=False) if len(obs) else "empty"
    if inferred == "empty":
        return _Read("empty", missing, values)
    if inferred in _NUMERIC_INFERRED:
        out = np.full(len(values), np.nan)
        try:
            out[~missing] = obs.astype(np.float64)
        except OverflowError:
            raise ValueError(f"{label} holds an integer too large for a float (beyond 1.8e308): scale it or "
                             "store it as text") from None
        return _Read("numeric", missing, out)
    if inferred == "string":
        numbers = pd.to_numeric(obs, errors="coerce")
        if not np.isnan(np.asarray(numbers, dtype=np.float64)).any():  # '25.3', '7': numbers stored as text
            out = np.full(len(values), np.nan)
            out[~missing] = numbers
            return _Read("numeric", missing, out, text=_text_format(obs))
        return _Read("categorical", missing, values)
    if inferred == "boolean":
        return _Read("bool", missing, values)
    if inferred == "complex":
        raise ValueError(f"Complex data not supported ({label})")
    if inferred in _TEMPORAL_INFERRED or inferred == "date":  # datetime.date objects: a one-line error there
        return _read_column(pd.Series(objects_as_temporal(values, label)), label)
    kinds = set()
    for v in obs:
        if isinstance(v, (bool, np.bool_)):
            kinds.add("booleans")
        elif isinstance(v, (int, float, np.integer, np.floating)):
            kinds.add("numbers")
        elif isinstance(v, str):
            kinds.add("strings")
        else:
            raise TypeError(f"{label}: float() argument must be a string or a real number, "
                            f"not {type(v).__name__!r}")
    raise ValueError(f"{label} mixes {' and '.join(sorted(kinds))}: make every value of a column the same type")


def objects_as_temporal(values: np.ndarray, label: str) -> np.ndarray:
    """An object array whose values are Timestamps / datetimes or Timedeltas (None / NaT / NaN missing), a table built
    row by row, as datetime64 / timedelta64 (NaT missing); any other array as it is. ``datetime.date`` objects and
    time-zone-aware Timestamps: a ValueError naming ``label``."""
    if values.dtype != object:
        return values
    obs = values[~pd.isna(values)]
    inferred = infer_dtype(obs, skipna=False) if len(obs) else "empty"
    if inferred == "date":
        raise ValueError(f"{label} holds datetime.date objects: convert it with pd.to_datetime")
    if inferred not in _TEMPORAL_INFERRED:
        return values
    if inferred.startswith("datetime"):
        if any(getattr(v, "tzinfo", None) is not None for v in obs):
            raise ValueError(f"{label} holds time-zone-aware dates as objects: convert it with pd.to_datetime")
        return pd.to_datetime(values).to_numpy()
    return pd.to_timedelta(values).to_numpy()


def _text_format(strings: np.ndarray) -> str:
    """How imputations of numbers written as ``strings`` are written: with as many decimals as the most
    precise observed one ('25.30' -> '.2f', '7' -> '.0f'), or shortest (``''``) if any has an exponent."""
    plain = [str(v).strip().lower() for v in strings]
    if any(c in v for v in plain for c in "ein"):  # 1e-5, inf, nan
        return ""
    return f".{max(len(v.partition('.')[2]) for v in plain)}f"


def _read_column(col: pd.Series | np.ndarray, label: str) -> _Read:
    """Classify one column and extract its observed values (no fit-time state involved)."""
    if isinstance(col, np.ndarray):
        dtype = col.dtype
        if dtype.kind == "O":
            return _read_objects(col, label)
        if dtype.kind == "b":
            return _Read("bool", np.zeros(len(col), dtype=bool), col.astype(object))
        if dtype.kind in "iuf":
            values = col.astype(np.float64)
            return _Read("numeric", np.isnan(values), values)
        if dtype.kind in "mM":  # datetime64 / timedelta64 arrays: read as a pandas column of them is
            return _read_column(pd.Series(col), label)
        raise ValueError(f"{label} has unsupported dtype {dtype}")
    dtype = col.dtype
    missing = col.isna().to_numpy(dtype=bool)
    if isinstance(dtype, pd.CategoricalDtype):
        return _Read("categorical", missing, col.to_numpy(dtype=object), categories=list(dtype.categories))
    if pd.api.types.is_bool_dtype(dtype):
        return _Read("bool", missing, col.to_numpy(dtype=object))
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        temporal = "timedelta" if pd.api.types.is_timedelta64_dtype(dtype) else "datetime"
        if getattr(dtype, "tz", None) is not None:
            col = col.dt.tz_convert("UTC").dt.tz_localize(None)  # the same instants, as UTC wall times
        ticks = col.to_numpy()  # datetime64 / timedelta64 in the dtype's unit; NaT at missing
        return _Read("numeric", missing, ticks.view(np.int64), temporal=temporal, tick=np.datetime_data(ticks.dtype)[0])
    if pd.api.types.is_complex_dtype(dtype):
        raise ValueError(f"Complex data not supported ({label})")
    if pd.api.types.is_numeric_dtype(dtype):
        return _Read("numeric", missing, col.to_numpy(dtype=np.float64, na_value=np.nan))
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        return _read_objects(col.to_numpy(dtype=object), label)
    raise ValueError(f"{label} has unsupported dtype {dtype}")


def _columns(table: pd.DataFrame | np.ndarray):
    """(name, column) pairs; positions for arrays, labels for DataFrames."""
    if isinstance(table, pd.DataFrame):
        return [(name, table.iloc[:, j]) for j, name in enumerate(table.columns)]
    return [(j, table[:, j]) for j in range(table.shape[1])]


def _moments(values: np.ndarray) -> tuple[float, float, bool]:
    """(mean, std, constant) of observed values, float64, the population std as ``scaling.standardize`` takes
    it. Any spread is a scale, however small next to the mean (1e12 + 0/1, timestamps a microsecond apart) or
    however tiny (1e-200, whose squares underflow): a column is constant only when its observed values are all
    equal, and then gets std 1 (shift only). The values are scaled by the power of two nearest their largest
    magnitude first, so that neither the sum nor the squares leave the float64 range; a power of two is exact,
    so on ordinary scales the result is bit for bit ``values.mean()``, ``values.std()``."""
    if values.min() == values.max():
        return float(values[0]), 1.0, True
    scale = np.ldexp(1.0, int(np.frexp(np.abs(values).max())[1]) - 1)  # the largest |values| / scale in [1, 2)
    u = values / scale
    std = float(u.std() * scale) or float(np.finfo(np.float64).smallest_subnormal)  # two neighbouring subnormals
    return float(u.mean() * scale), std, False


def standardized(v: np.ndarray, mean: float, std: float) -> np.ndarray:
    """(v - mean) / std clamped to +-TABLE_CLIP, float64; finite for any finite values (near the float64 limit the
    difference of two values of opposite signs overflows: it is then taken halved)."""
    with np.errstate(over="ignore"):
        z = (v - mean) / std
    far = ~np.isfinite(z)
    z[far] = (v[far] / 2 - mean / 2) / (std / 2)
    return np.clip(z, -TABLE_CLIP, TABLE_CLIP)


def destandardized(z: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Values of standardized ``z`` (clamped to +-TABLE_CLIP): z * std + mean, float64, held within the finite range
    (near the float64 limit the product overflows: it is then taken on a 16x smaller scale)."""
    z = np.clip(np.asarray(z, dtype=np.float64), -TABLE_CLIP, TABLE_CLIP)
    with np.errstate(over="ignore"):
        v = z * std + mean
        far = ~np.isfinite(v)
        v[far] = (z[far] * (std / 16) + mean / 16) * 16
    big = np.finfo(np.float64).max
    return np.clip(v, -big, big)


class TablePreprocessor:
    """Fit per-column encodings on observed cells; encode tables for the model and decode imputations.

    Args:
        max_classes: most categories a categorical column may have (the model's ``max_classes``).

    Attributes (after ``fit``):
        columns_: list of ColumnSpec, one per column, in order.
        feature_names_: the DataFrame's column labels, or None when fitted on an array.
    """

    def __init__(self, max_classes: int = 100) -> None:
        self.max_classes = max_classes

    def fit(self, X) -> TablePreprocessor:
        table = as_table(X)
        framed = isinstance(table, pd.DataFrame)
        n_rows = table.shape[0]
        specs = []
        for name, col in _columns(table):
            label = _label(name, framed)
            read = _read_column(col, label)
            n_obs = int((~read.missing).sum())
            if read.kind == "empty" or n_obs == 0:
                raise ValueError(f"{label} has no observed values (all missing): drop it or fill it")
            if n_obs < 2:
                raise ValueError(f"{label} has {n_obs} observed value; at least 2 are needed to fit "
                                 f"(the table has n_samples={n_rows})")
            if read.kind == "numeric":
                unit = read.resolution() if read.temporal else None
                obs = read.numbers(unit)[~read.missing]
                if not np.isfinite(obs).all():
                    raise ValueError(f"{label} contains inf or -inf values: replace them, e.g. with NaN to "
                                     "have them imputed")
                mean, std, constant = _moments(obs)
                # Beyond 2**53 float64 holds only some integers: such columns are not "integer" (no int64 cast).
                # Dates and durations are whole counts of their unit by construction.
                integer = unit is not None or bool(np.all(obs == np.round(obs)) and np.abs(obs).max() < 2**53)
                specs.append(ColumnSpec(name, "numeric", mean, std, integer, read.temporal, unit, read.text,
                                        constant=constant))
                continue
            levels = set(read.values[~read.missing].tolist())
            if read.kind == "bool":
                categories = [False, True]
            elif read.categories is not None:  # declared levels no cell uses are not predicted
                categories = [c for c in read.categories if c in levels]
            else:
                categories = sorted(levels)
            if len(categories) > self.max_classes:
                raise ValueError(
                    f"{label} has {len(categories)} categories, more than max_classes={self.max_classes} "
                    "that the model can predict: encode it differently (group rare levels into one, use "
                    "numeric codes if the levels are ordered, or drop the column)"
                )
            specs.append(ColumnSpec(name, "categorical", categories=list(categories)))
        self.columns_ = specs
        self.feature_names_ = list(table.columns) if framed else None
        return self

    @property
    def n_features_(self) -> int:
        return len(self.columns_)

    def check_columns(self, table: pd.DataFrame | np.ndarray) -> bool:
        """Raise a one-line ValueError unless ``table`` (from ``as_table``) has the fitted columns: by count, and
        by name when both are DataFrames (saying which are missing, which unexpected, or the order). Returns
        whether the table is a DataFrame."""
        framed = isinstance(table, pd.DataFrame)
        names = list(table.columns) if framed and self.feature_names_ is not None else self.feature_names_
        missing = [c for c in self.feature_names_ or [] if c not in names]
        extra = [c for c in names or [] if c not in self.feature_names_]
        which = f"missing {missing}, unexpected {extra}"
        if table.shape[1] != self.n_features_:
            raise ValueError(f"the table has {table.shape[1]} columns but the preprocessor was fitted on "
                             f"{self.n_features_}" + (f": {which}" if missing or extra else ""))
        if missing or extra:
            raise ValueError(f"columns differ from fit: {which}")
        if names != self.feature_names_:
            raise ValueError(f"columns are in a different order than at fit: got {names}, expected "
                             f"{self.feature_names_}")
        return framed

    def transform(self, X) -> EncodedTable:
        """Encode a table with the fitted columns. Missing cells get x = 0 and known = False."""
        table = as_table(X)
        framed = self.check_columns(table)
        n = table.shape[0]
        x = np.zeros((n, self.n_features_), dtype=np.float32)
        known = np.zeros((n, self.n_features_), dtype=bool)
        for j, ((name, col), spec) in enumerate(zip(_columns(table), self.columns_)):
            label = _label(name, framed)
            read = _read_column(col, label)
            obs = ~read.missing
            known[:, j] = obs
            if read.kind == "empty" or not obs.any():
                continue
            if spec.kind == "numeric":
                if read.kind != "numeric" or read.temporal != spec.temporal:
                    now = {"categorical": "strings", "bool": "booleans"}.get(read.kind, read.temporal or "numbers")
                    raise ValueError(f"{label} was {spec.temporal or 'numeric'} at fit but now holds {now}")
                v = read.numbers(spec.unit)[obs]
                if not np.isfinite(v).all():
                    raise ValueError(f"{label} contains inf or -inf values: replace them, e.g. with NaN to "
                                     "have them imputed")
                x[obs, j] = standardized(v, spec.mean, spec.std)
            else:
                observed = col[obs] if isinstance(col, np.ndarray) else col.to_numpy(dtype=object)[obs]
                codes = pd.Index(spec.categories, dtype=object).get_indexer(np.asarray(observed, dtype=object))
                if (codes < 0).any():
                    unseen = sorted({str(v) for v in np.asarray(observed, dtype=object)[codes < 0]})
                    raise ValueError(f"{label} has categories not seen at fit: {unseen[:5]}"
                                     f"{' ...' if len(unseen) > 5 else ''} (fit saw {spec.categories})")
                x[obs, j] = codes
        is_cat = np.array([s.kind == "categorical" for s in self.columns_], dtype=bool)
        n_classes = np.array([s.n_classes for s in self.columns_], dtype=np.int64)
        return EncodedTable(x, known, is_cat, n_classes)

    def fit_transform(self, X) -> EncodedTable:
        return self.fit(X).transform(X)

    def decode(self, j: int, z: np.ndarray) -> np.ndarray:
        """Values of column ``j`` from model outputs z (standardized values or codes), shape (n,).

        Numeric: float64 (rounded for integer columns; counts of ``unit`` for temporal ones); categorical: labels.
        """
        spec = self.columns_[j]
        z = np.nan_to_num(np.asarray(z, dtype=np.float64), nan=0.0)
        if spec.kind == "categorical":
            codes = np.clip(np.round(z), 0, spec.n_classes - 1).astype(np.int64)
            labels = np.empty(len(codes), dtype=object)
            labels[:] = [spec.categories[c] for c in codes]
            return labels
        if spec.constant:
            return np.full(len(z), spec.mean)
        v = destandardized(z, spec.mean, spec.std)
        return np.round(v) if spec.integer else v

    def inverse_transform(self, x: np.ndarray, X):
        """Fill the missing cells of ``X`` with the decoded model outputs ``x`` (N, F); same type as ``X``.

        Observed cells are copied from ``X`` unchanged. Dtype contract: DataFrames keep index, column order and
        every column's dtype (float stays float, with integer values imputed where every observed value is an
        integer below 2**53; nullable Int/Float/boolean, category (all declared categories), string, datetime,
        timedelta stay as they are; object stays object); arrays come back as arrays of their dtype (a numeric
        array that must hold labels becomes object). In object and string columns imputed numbers are Python
        ints/floats, or strings where the observed numbers were strings ('25.3' -> '26.1', '7' -> '8').
        """
        table = as_table(X)
        framed = self.check_columns(table)
        x = np.asarray(x)
        if x.shape != table.shape:
            raise ValueError(f"imputations have shape {x.shape}, the table {table.shape}")
        miss = missing_mask(table)
        if framed:
            out = table.copy()
            for j, spec in enumerate(self.columns_):
                rows = miss[:, j]
                if rows.any():
                    col = table.iloc[:, j]
                    fill = _held(self.decode(j, x[rows, j]), col.dtype, spec)
                    out.isetitem(j, self._fill_series(col, rows, fill, spec))
            return out
        needs_object = any(s.kind == "categorical" and miss[:, j].any() for j, s in enumerate(self.columns_))
        out = table.astype(object) if needs_object and table.dtype.kind != "O" else table.copy()
        for j, spec in enumerate(self.columns_):
            rows = miss[:, j]
            if not rows.any():
                continue
            fill = _held(self.decode(j, x[rows, j]), out.dtype, spec)
            if out.dtype.kind in "mM":
                fill = _temporal(fill, spec, _tick(out.dtype))
            elif out.dtype.kind == "O":
                fill = _objects(fill, spec, text=spec.text)
            out[rows, j] = fill
        if isinstance(X, np.ndarray) and X.dtype.kind in "US":  # a string array stays one ('nan' cells filled)
            return out.astype(X.dtype.kind)
        return out

    @staticmethod
    def _fill_series(s: pd.Series, rows: np.ndarray, fill: np.ndarray, spec: ColumnSpec) -> pd.Series:
        """Column ``s`` with ``fill`` at ``rows``, in the dtype the caller expects back."""
        dtype = s.dtype
        if spec.kind == "numeric" and spec.temporal is None and isinstance(dtype, np.dtype) and dtype.kind == "f":
            arr = s.to_numpy(copy=True)
            arr[rows] = fill  # a float column stays float (integer-valued columns get integer values)
            return pd.Series(arr, index=s.index, name=s.name)
        holds_text = pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
        obj = s.to_numpy(dtype=object, copy=True)
        obj[rows] = _objects(fill, spec, text=spec.text if holds_text else None, tz=getattr(dtype, "tz", None),
                             tick=_tick(dtype))
        values = _as_dtype(obj, dtype, spec)
        return pd.Series(values, index=s.index, name=s.name, dtype=values.dtype)  # pandas would infer str


def _objects(fill: np.ndarray, spec: ColumnSpec, text: str | None = None, tz=None, tick: str = "ns") -> np.ndarray:
    """Decoded values of a column as Python objects: labels, Timestamps / Timedeltas (in time zone ``tz``, unit
    ``tick``), numbers as ints (integer columns) or floats, or as strings in the format ``text``."""
    out = np.empty(len(fill), dtype=object)
    if spec.temporal == "datetime":
        stamps = pd.DatetimeIndex(_temporal(fill, spec, tick))
        out[:] = list(stamps if tz is None else stamps.tz_localize("UTC").tz_convert(tz))
    elif spec.temporal == "timedelta":
        out[:] = list(pd.TimedeltaIndex(_temporal(fill, spec, tick)))
    elif spec.kind == "numeric":
        numbers = [int(v) if spec.integer else float(v) for v in fill]
        out[:] = numbers if text is None else [format(v, text) for v in numbers]
    else:
        out[:] = list(fill)
    return out


def _temporal(fill: np.ndarray, spec: ColumnSpec, tick: str) -> np.ndarray:
    """Decoded counts of ``spec.unit`` as datetime64 (UTC wall times) / timedelta64 in the column's unit
    ``tick``; built in numpy, not through a nanosecond Timedelta, so that dates beyond 2262 in a coarser unit
    fit (``_held`` has held the counts within the unit's range)."""
    tick_ns, unit_ns = _UNITS_NS[tick], _UNITS_NS[spec.unit]
    counts = fill.astype(np.int64)
    ticks = counts * (unit_ns // tick_ns) if unit_ns >= tick_ns else counts // (tick_ns // unit_ns)
    steps = ticks.astype(f"m8[{tick}]")
    return steps + np.datetime64(0, tick) if spec.temporal == "datetime" else steps


def temporal_values(counts: np.ndarray, dtype: np.dtype, unit: str | None = None) -> np.ndarray:
    """Float counts of ``unit`` (a key of ``_UNITS_NS``; None: the ticks of a datetime64 / timedelta64 ``dtype``)
    as values of that dtype: rounded to whole units and held within its range (NaT excluded), as imputations of
    such a column are (``DiffusionRegressor``'s target)."""
    tick = _tick(dtype)
    spec = ColumnSpec("", "numeric", integer=True, temporal="datetime" if dtype.kind == "M" else "timedelta",
                      unit=unit or tick)
    return _temporal(_held(np.round(counts), dtype, spec), spec, tick)


def temporal_counts(values: np.ndarray) -> tuple[np.ndarray, str]:
    """Complete datetime64 / timedelta64 ``values`` as float64 counts of their resolution, and that unit: the
    coarsest unit every value is a whole multiple of (daily dates count days), as a feature column's are."""
    read = _Read("numeric", np.zeros(len(values), dtype=bool), values.view(np.int64),
                 temporal="datetime" if values.dtype.kind == "M" else "timedelta", tick=_tick(values.dtype))
    unit = read.resolution()
    return read.numbers(unit), unit


def _tick(dtype) -> str:
    """The unit (s, ms, us, ns) dates and durations of a column of ``dtype`` are built in: its own; seconds for
    numpy's coarser units (m, h, D, ...) and ns for its finer ones, which numpy casts to on assignment; pandas'
    ns for a column of another dtype."""
    if isinstance(dtype, np.dtype) and dtype.kind in "mM":
        unit = np.datetime_data(dtype)[0]
        return unit if unit in ("s", "ms", "us", "ns") else "ns" if unit in ("ps", "fs", "as") else "s"
    return getattr(dtype, "unit", None) or "ns"  # DatetimeTZDtype


def _below(n: int) -> float:
    """The largest float64 not above the integer ``n`` (float(2**63 - 1) rounds up to 2**63, out of int64)."""
    f = float(n)
    return f if f <= n else float(np.nextafter(f, -np.inf))


def _held(fill: np.ndarray, dtype, spec: ColumnSpec) -> np.ndarray:
    """Decoded values of a numeric column held within what its ``dtype`` stores: an imputation beyond an
    integer dtype's range would raise deep in pandas (UInt8 below 0), beyond float16/float32's become inf, and
    dates and durations beyond the int64 ticks of their unit NaT. Observed cells never pass here."""
    if spec.kind != "numeric":
        return fill
    if spec.temporal is not None:  # counts of spec.unit whose ticks fit in int64, NaT (its minimum) excluded
        tick_ns, unit_ns = _UNITS_NS[_tick(dtype)], _UNITS_NS[spec.unit]
        most = np.iinfo(np.int64).max // max(unit_ns // tick_ns, 1)
        return np.clip(fill, -_below(most), _below(most))
    storage = getattr(dtype, "numpy_dtype", dtype)  # nullable Int/UInt/Float: their numpy dtype
    if not isinstance(storage, np.dtype) or storage.kind not in "iuf":
        return fill  # object and string columns hold Python numbers of any size
    info = np.iinfo(storage) if storage.kind in "iu" else np.finfo(storage)
    return np.clip(fill, float(info.min), _below(int(info.max)) if storage.kind in "iu" else float(info.max))


def _as_dtype(obj: np.ndarray, dtype, spec: ColumnSpec):
    """Filled object values in the column's own dtype when it can hold them, else the natural one."""
    t = pd.api.types
    booleans = spec.categories == [False, True]
    if t.is_object_dtype(dtype):
        return obj  # object stays object (booleans and strings included)
    if spec.text is not None and t.is_string_dtype(dtype):
        keeps = True
    elif spec.temporal == "datetime":
        keeps = t.is_datetime64_any_dtype(dtype)
    elif spec.temporal == "timedelta":
        keeps = t.is_timedelta64_dtype(dtype)
    elif spec.kind == "numeric":
        keeps = t.is_numeric_dtype(dtype) and not t.is_bool_dtype(dtype)
    else:
        keeps = isinstance(dtype, pd.CategoricalDtype) or t.is_bool_dtype(dtype) or (
            t.is_string_dtype(dtype) and all(isinstance(c, str) for c in spec.categories))
    if keeps:
        return pd.array(obj, dtype=dtype)
    # e.g. an all-missing float column standing in for a string, datetime or integer column
    if spec.kind == "categorical":
        return obj.astype(bool) if booleans else obj
    if spec.temporal is not None:
        return pd.array(list(obj))
    return obj.astype(np.int64 if spec.integer else np.float64)
