"""Input handling found wrong by an audit: each case gave a silent wrong answer, a crash deep in pandas or
inference, or a multi-line error before its fix. On the shipped checkpoint; tables of 60 rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icl_diffusion import DiffusionClassifier, DiffusionImputer, DiffusionRegressor
from icl_diffusion.cli import main
from icl_diffusion.preprocessing import TablePreprocessor, _moments
from icl_diffusion.scaling import CLIP

pytestmark = pytest.mark.usefixtures("single_thread")

N = 60
X = np.random.default_rng(0).normal(size=N)
LOW, HIGH = np.argsort(X)[:6], np.argsort(X)[-6:]  # holes where the column's smallest / largest values would be


def imputer():
    return DiffusionImputer(random_state=0)


def with_holes(values, rows=HIGH) -> pd.DataFrame:
    df = pd.DataFrame({"x": X, "v": values})
    df.loc[rows, "v"] = None
    return df


def assert_observed_kept(df: pd.DataFrame, out: pd.DataFrame) -> None:
    seen = df["v"].notna()
    assert out["v"].dtype == df["v"].dtype
    assert out["v"][seen].equals(df["v"][seen])
    assert out["v"].notna().all()


# a column's scale -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale, offset", [(1.0, 1e12), (1e-200, 0.0), (2.0**-1070, 0.0)],
                         ids=["1e12 + 0|1", "1e-200", "subnormal"])
def test_a_column_with_any_spread_is_not_constant(scale, offset):
    """Spread next to the mean (1e12 + 0/1) or squares that underflow (1e-200) made the column constant."""
    mean, std, constant = _moments(offset + scale * (np.arange(N) % 2))
    assert not constant
    np.testing.assert_allclose([mean, std], [offset + scale / 2, scale / 2], rtol=1e-12)
    mean, std, constant = _moments(np.array([0.1 + 0.2, 0.3] * 5))  # one ulp apart
    assert not constant and 0 < std < 1e-16
    assert _moments(np.full(5, 1e12)) == (1e12, 1.0, True)


def test_near_constant_and_tiny_columns_are_imputed_from_the_other_columns():
    """1e12 + (x > 0) was filled with 1e12 + 0.52 everywhere, x * 1e-200 with one value."""
    holes = np.r_[LOW[:3], HIGH[:3]]
    for values, unit in ((1e12 + (X > 0), 1.0), (X * 1e-200, 1e-200)):
        df = with_holes(values, holes)
        out = imputer().fit_transform(df)
        filled = (out.loc[holes, "v"].to_numpy() - (1e12 if unit == 1 else 0)) / unit
        assert filled[3:].min() > filled[:3].max()  # follows x
        assert_observed_kept(df, out)


def test_timestamps_within_a_millisecond_are_imputed_from_the_other_columns():
    stamps = pd.Timestamp("2024-05-01 12:00") + pd.to_timedelta(np.round((X - X.min()) * 200).astype(int), unit="us")
    df = with_holes(stamps, np.r_[LOW[:3], HIGH[:3]])
    out = imputer().fit_transform(df)
    filled = out.loc[np.r_[LOW[:3], HIGH[:3]], "v"]
    assert filled.iloc[3:].min() > filled.iloc[:3].max()
    assert_observed_kept(df, out)


@pytest.mark.parametrize("offset, unit", [(1e13, 1.0), (0.0, 1e-200)], ids=["1e13 + x", "1e-200 x"])
def test_regressor_target_with_tiny_spread_is_predicted(offset, unit):
    """The target was constant, and so every prediction."""
    train = pd.DataFrame({"x": X})
    reg = DiffusionRegressor(random_state=0).fit(train, offset + X * unit)
    pred = (reg.predict(pd.DataFrame({"x": [-1.0, 1.0]})) - offset) / unit
    assert pred[1] - pred[0] > 1


# imputations beyond the dtype's range ------------------------------------------------------------------------


RANGED = {
    "UInt8": (pd.array(np.round(X - X.min()).astype(int), dtype="UInt8"), LOW, 0, 255),
    "UInt16": (pd.array(np.round(X - X.min()).astype(int), dtype="UInt16"), LOW, 0, 65535),
    "Int8": (pd.array(np.round((X - X.min()) / np.ptp(X) * 254 - 127).astype(int), dtype="Int8"), HIGH, -128, 127),
    "float16": ((X - X.min()) / np.ptp(X) * 65000, HIGH, -65504, 65504),
    "float32": ((X - X.min()) / np.ptp(X) * 3.4e38, HIGH, -3.4028235e38, 3.4028235e38),
}


@pytest.mark.parametrize("name", RANGED)
def test_imputations_are_held_in_the_dtypes_range(name):
    """Beyond its dtype's range an imputation crashed in pandas (OverflowError) or came back inf."""
    values, holes, lo, hi = RANGED[name]
    df = with_holes(values if name[0] != "f" else values.astype(name), holes)
    pre = TablePreprocessor().fit(df)
    enc = pre.transform(df)
    far = -CLIP if holes is LOW else CLIP  # the network's most extreme answer, past the dtype's limit
    out = pre.inverse_transform(np.where(enc.known, enc.x, far), df)
    assert_observed_kept(df, out)
    filled = out.loc[holes, "v"].to_numpy(dtype=np.float64)
    assert np.isfinite(filled).all() and (filled >= lo).all() and (filled <= hi).all()
    assert_observed_kept(df, imputer().fit_transform(df))


@pytest.mark.parametrize("kind", ["datetime64[ns]", "timedelta64[ns]", "datetime64[ns, UTC]"])
def test_temporal_imputations_near_the_int64_limit_are_not_nat(kind):
    """Dates near 2262 and durations near 292 years came back NaT (the int64 cast overflowed)."""
    span = (X - X.min()) / np.ptp(X)
    ticks = (np.iinfo(np.int64).max - 10**17 + span * (10**17 - 10**9)).astype(np.int64)
    values = pd.Series(ticks.view("M8[ns]" if kind[0] == "d" else "m8[ns]"))
    if kind.endswith("UTC]"):
        values = values.dt.tz_localize("UTC")
    df = with_holes(values, HIGH)
    pre = TablePreprocessor().fit(df)
    enc = pre.transform(df)
    out = pre.inverse_transform(np.where(enc.known, enc.x, CLIP), df)
    assert_observed_kept(df, out)
    assert_observed_kept(df, imputer().fit_transform(df))


# the command line's CSV ----------------------------------------------------------------------------------


def run_cli(tmp_path, text: str) -> tuple[int, str | None]:
    """``impute`` on a CSV of ``text``: the exit status and the output's text (None if none was written)."""
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(text)
    code = main(["impute", str(src), "-o", str(out)])
    return code, out.read_text() if out.exists() else None


def csv_table(sep: str = ",", trailing: str = "") -> str:
    lines = [sep.join(["a", "b", "c"]) + trailing]
    for i in range(N):
        a = "" if i in HIGH else str(round(X[i], 3))
        lines.append(sep.join([a, str(round(2 * X[i], 3)), "pq"[i % 2]]) + trailing)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("sep, name", [(";", "';'"), ("\t", "tab")])
def test_csv_with_another_separator_is_refused(tmp_path, capsys, sep, name):
    """Read as one column named 'a;b;c' and written back mangled, with exit status 0."""
    code, written = run_cli(tmp_path, csv_table(sep))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and written is None and len(err) == 1 and name in err[0]


@pytest.mark.parametrize("text, line", [("a,b\n1,2,3\n2,5\n3,4\n4,\n", 2), ("a,b\n1,2\n2,5\n3,4,7\n4,\n", 4)])
def test_row_with_more_fields_than_the_header_is_refused(tmp_path, capsys, text, line):
    """The first field became pandas' index and was lost, the rest shifted one column left."""
    code, written = run_cli(tmp_path, text)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and written is None and len(err) == 1 and f"line {line}" in err[0]


def test_trailing_comma_on_every_line_is_written_back(tmp_path):
    """An all-empty 'Unnamed: 3' column was refused as a column without observed values."""
    text = csv_table(trailing=",")
    code, written = run_cli(tmp_path, text)
    assert code == 0
    lines = written.splitlines()
    assert lines[0] == "a,b,c," and all(line.endswith(",") and line.count(",") == 3 for line in lines)
    kept = [line for i, line in enumerate(text.splitlines()) if i - 1 not in HIGH]
    assert kept == [line for i, line in enumerate(lines) if i - 1 not in HIGH]


def test_unnamed_first_column_keeps_its_empty_header(tmp_path):
    rows = csv_table().splitlines()
    text = "\n".join([f",{rows[0]}", *(f"{i},{r}" for i, r in enumerate(rows[1:]))]) + "\n"
    code, written = run_cli(tmp_path, text)
    assert code == 0 and written.splitlines()[0] == ",a,b,c"


def test_observed_cells_are_written_as_read(tmp_path):
    """TRUE / FALSE came back True / False; an observed 2 of a predict feature with a hole came back 2.0."""
    header, rows = "a,b,f", []
    for i in range(N):
        a = "" if i in HIGH else str(round(X[i], 3))
        b = "" if i % 7 == 0 else str(i % 5)
        f = "" if i == 4 else "TRUE" if X[i] > 0 else "FALSE"
        rows.append(f"{a},{b},{f}")
    code, written = run_cli(tmp_path, "\n".join([header, *rows]) + "\n")
    assert code == 0
    out = written.splitlines()[1:]
    assert {line.rsplit(",", 1)[1] for line in out} == {"TRUE", "FALSE"}
    complete = [i for i, row in enumerate(rows) if "" not in row.split(",")]
    assert [out[i] for i in complete] == [rows[i] for i in complete]

    train, test, pred = tmp_path / "train.csv", tmp_path / "test.csv", tmp_path / "pred.csv"
    train.write_text("\n".join([header, *(row for row in rows if not row.startswith(","))]) + "\n")
    test.write_text("a,b,f\n1.5,2,\n0.5,,TRUE\n-1.0,3,FALSE\n")
    assert main(["predict", "--train", str(train), "--test", str(test), "--target", "a", "-o", str(pred)]) == 0
    lines = pred.read_text().splitlines()
    assert [line.split(",", 1)[1] for line in lines] == ["b,f", "2,", ",TRUE", "3,FALSE"]


# numpy and list inputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["U", "S"])
def test_nan_in_a_numpy_string_array_is_missing(kind):
    """np.array([[1.5, 'a'], [np.nan, 'b']]) holds 'nan': it stayed as the label/number 'nan'."""
    rows = [[round(v, 2), "pq"[i % 2] if i % 9 else np.nan] for i, v in enumerate(X)]
    for i in HIGH:
        rows[i][0] = np.nan
    arr = np.array(rows).astype(kind)
    out = imputer().fit_transform(arr)
    assert out.dtype.kind == kind
    text = out.astype(str)
    assert "nan" not in set(text.ravel())
    seen = arr.astype(str) != "nan"
    assert np.array_equal(text[seen], arr.astype(str)[seen])
    assert np.isfinite(text[:, 0].astype(float)).all() and set(text[:, 1]) == {"p", "q"}


def test_list_of_numbers_with_none_comes_back_as_floats():
    """A list of lists of floats and None came back as an object array mixing Python ints and floats."""
    rows = [[float(v), float(2 * v)] for v in X]
    for i in HIGH:
        rows[i][1] = None
    out = imputer().fit_transform(rows)
    assert out.dtype == np.float64 and np.isfinite(out).all()
    assert np.array_equal(out[:, 0], X)


# bad counts and numbers ----------------------------------------------------------------------------------------


def test_boolean_counts_are_refused():
    df = with_holes(X * 2)
    fitted = imputer().fit(df)
    for call in (lambda: fitted.sample(df, n_imputations=True),
                 lambda: DiffusionImputer(n_imputations=True).fit(df),
                 lambda: DiffusionImputer(n_steps=True).fit(df),
                 lambda: DiffusionRegressor().fit(df[["x"]], X).predict_samples(df[["x"]], n_samples=True)):
        with pytest.raises(ValueError, match="integer >= 1, got True") as info:
            call()
        assert "\n" not in str(info.value)


def test_integer_too_large_for_a_float_names_its_column():
    df = pd.DataFrame({"x": X, "big": np.array([10**400, *range(N - 1)], dtype=object)})
    df.loc[HIGH, "big"] = None
    with pytest.raises(ValueError, match="column 'big'.*too large"):
        imputer().fit(df)


# columns other than at fit -------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, match", [
    (lambda d: d.drop(columns="b"), r"missing \['b'\]"),
    (lambda d: d.assign(z=1.0), r"unexpected \['z'\]"),
    (lambda d: d.rename(columns={"b": "B"}), r"missing \['b'\], unexpected \['B'\]"),
    (lambda d: d[["b", "a", "c"]], r"different order.*\['b', 'a', 'c'\].*\['a', 'b', 'c'\]"),
], ids=["missing", "unexpected", "renamed", "reordered"])
def test_columns_other_than_at_fit_are_named_in_one_line(change, match):
    df = pd.DataFrame({"a": X, "b": X ** 2, "c": np.where(X > 0, "p", "q")})
    y = (X > 0).astype(int)
    fitted = [imputer().fit(df), DiffusionRegressor(random_state=0).fit(df, X),
              DiffusionClassifier(random_state=0, calibrate=False).fit(df, y)]
    for est, call in zip(fitted, ("transform", "predict", "predict_proba")):
        with pytest.raises(ValueError, match=match) as info:
            getattr(est, call)(change(df))
        assert "\n" not in str(info.value)


# a datetime target -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["ns", "s"])
def test_regressor_predicts_dates_for_a_date_target(unit):
    """A datetime target came back as raw integer counts (nanoseconds since 1970 as floats)."""
    y = (pd.Timestamp("2020-01-01") + pd.to_timedelta(np.round(X * 100), unit="D")).to_numpy().astype(f"M8[{unit}]")
    reg = DiffusionRegressor(random_state=0).fit(pd.DataFrame({"x": X}), y)
    query = pd.DataFrame({"x": [-1.0, 1.0]})
    pred = reg.predict(query)
    assert pred.dtype == y.dtype and y.min() <= pred[0] < pred[1] <= y.max()
    bands = reg.predict_quantiles(query, (0.1, 0.9), n_samples=8)
    assert bands.dtype == y.dtype and bands.shape == (2, 2)
    assert reg.predict_samples(query, n_samples=3).dtype == y.dtype
    # Daily dates are regressed as days and predicted as whole days, as an imputed date column is.
    assert reg.y_unit_ == "D"
    for values in (pred, bands.ravel()):
        assert (values == values.astype("M8[D]").astype(y.dtype)).all()


def test_regressor_reads_a_target_of_timestamp_objects_as_dates():
    """A target of Timestamps held as Python objects raised scikit-learn's TypeError (session 48)."""
    dates = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.round(X * 100), unit="D")
    y = pd.Series(list(dates), dtype=object)
    reg = DiffusionRegressor(random_state=0).fit(pd.DataFrame({"x": X}), y)
    pred = reg.predict(pd.DataFrame({"x": [-1.0, 1.0]}))
    assert pred.dtype.kind == "M" and dates.min() <= pred[0] < pred[1] <= dates.max() and reg.y_unit_ == "D"
    with pytest.raises(ValueError, match="the target holds datetime.date objects"):
        DiffusionRegressor().fit(pd.DataFrame({"x": X}), pd.Series([d.date() for d in dates], dtype=object))


def test_regressor_keeps_a_finer_resolution_of_its_date_target():
    """Timestamps to the second are regressed and predicted in seconds, not rounded to days."""
    y = (pd.Timestamp("2020-01-01") + pd.to_timedelta(np.round(X * 1e5) + 1, unit="s")).to_numpy()
    reg = DiffusionRegressor(random_state=0).fit(pd.DataFrame({"x": X}), y)
    assert reg.y_unit_ == "s"
    pred = reg.predict(pd.DataFrame({"x": np.linspace(-1, 1, 7)}))
    assert (pred != pred.astype("M8[D]").astype(pred.dtype)).any()


def test_cli_predicts_a_date_target_as_dates(tmp_path):
    """--task auto took an ISO-date target for classes: every prediction one of the training dates."""
    from icl_diffusion.cli import main

    days = np.round(X * 60)
    when = (pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d")
    table = pd.DataFrame({"x": X, "when": when})
    table.iloc[:40].to_csv(tmp_path / "train.csv", index=False)
    table.iloc[40:, :1].to_csv(tmp_path / "test.csv", index=False)
    main(["predict", "--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"),
          "--target", "when", "-o", str(tmp_path / "out.csv")])
    written = pd.read_csv(tmp_path / "out.csv", dtype=str)["when"]
    assert written.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()  # whole dates, as the training ones
    pred = pd.to_datetime(written).to_numpy()
    truth = pd.to_datetime(table["when"].iloc[40:]).to_numpy()
    # A regression interpolates: new dates, close to the truth (the target is a function of x).
    assert not set(written) <= set(table["when"].iloc[:40])
    assert np.abs((pred - truth) / np.timedelta64(1, "D")).mean() < 0.25 * days.std()
