"""TablePreprocessor: encodings, the round trip of every supported dtype, and a clear error per bad input."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from icl_diffusion.preprocessing import TablePreprocessor, as_table
from icl_diffusion.scaling import CLIP, TABLE_CLIP, standardize


def mixed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "float": [0.1 + 0.2, np.nan, 2.5, -1.25, 7.0],
            "int_nan": [1.0, 4.0, np.nan, 3.0, 10.0],  # an int64 column read with a hole
            "Int64": pd.array([1, None, 3, 4, 8], dtype="Int64"),
            "bool": [True, False, True, True, False],
            "boolean": pd.array([True, None, False, True, None], dtype="boolean"),
            "obj_bool": np.array([True, None, False, True, False], dtype=object),
            "str": ["b", None, "a", "b", pd.NA],
            "object": np.array(["x", None, "y", "x", "z"], dtype=object),
            "category": pd.Categorical(["lo", "hi", None, "lo", "mid"], categories=["lo", "mid", "hi", "max"]),
            "date": pd.to_datetime(["2020-01-01", None, "2020-03-01", "2021-01-01", "2020-06-01"]),
        },
        index=[10, 11, 12, 13, 14],
    )


def fill_with(pre: TablePreprocessor, table, value: float = 0.4):
    enc = pre.transform(table)
    return enc, pre.inverse_transform(np.where(enc.known, enc.x, value), table)


def test_round_trip_keeps_dtypes_index_and_observed_cells():
    df = mixed_frame()
    pre = TablePreprocessor().fit(df)
    enc, out = fill_with(pre, df)
    assert list(out.columns) == list(df.columns) and list(out.index) == list(df.index)
    assert not out.isna().any().any()
    expected = dict(df.dtypes)
    # The dtype contract: every column keeps its dtype (float stays float, object stays object).
    assert dict(out.dtypes) == expected
    assert list(out["category"].cat.categories) == ["lo", "mid", "hi", "max"]
    for col in df.columns:
        seen = df[col].notna().to_numpy()
        assert (out[col].to_numpy(dtype=object)[seen] == df[col].to_numpy(dtype=object)[seen]).all(), col
    assert out.loc[10, "float"] == 0.1 + 0.2  # bit for bit, not through float32
    assert out.loc[12, "int_nan"] == round(out.loc[12, "int_nan"])
    assert enc.is_cat.tolist() == [False, False, False, True, True, True, True, True, True, False]
    assert enc.n_classes.tolist() == [0, 0, 0, 2, 2, 2, 2, 3, 3, 0]  # "max" is declared, never used


def test_numeric_standardized_like_training():
    values = np.array([1.0, 2.0, np.nan, 4.0, 100.0])
    pre = TablePreprocessor().fit(pd.DataFrame({"a": values}))
    enc = pre.transform(pd.DataFrame({"a": values}))
    known = ~np.isnan(values)
    x = torch.tensor(np.nan_to_num(values))[None, :, None]
    ref, _, _ = standardize(x, torch.tensor(known)[None, :, None], torch.zeros(1, 1, dtype=torch.bool))
    np.testing.assert_allclose(enc.x[known, 0], ref[0, known, 0].numpy(), rtol=1e-6)
    assert np.array_equal(enc.known[:, 0], known) and enc.x[2, 0] == 0
    far = pre.transform(pd.DataFrame({"a": [200.0, 1e9]}))
    assert far.x[0, 0] == pytest.approx((200 - 26.75) / values[known].std(), rel=1e-6)  # 4.0 stds: kept
    assert pre.transform(pd.DataFrame({"a": [600.0]})).x[0, 0] > CLIP  # beyond the network's range, kept too
    assert far.x[1, 0] == TABLE_CLIP  # held within float32's reach (the network sees +-CLIP: test_inference)


def test_categorical_codes():
    df = pd.DataFrame({"s": ["b", "a", "c", None], "c": pd.Categorical(["x", "z", "y", "x"], categories=["z", "y", "x"])})
    enc = TablePreprocessor().fit(df).transform(df)
    assert enc.x[:, 0].tolist() == [1, 0, 2, 0] and enc.known[:, 0].tolist() == [True, True, True, False]
    assert enc.x[:, 1].tolist() == [2, 0, 1, 2]  # a Categorical keeps its own order


def test_missing_markers():
    arr = np.array([[1.0, "a"], [None, None], [np.nan, pd.NA], [pd.NaT, "b"], [2.0, "a"]], dtype=object)
    enc = TablePreprocessor().fit(arr).transform(arr)
    assert enc.known.tolist() == [[True, True], [False, False], [False, False], [False, True], [True, True]]


def test_arrays_come_back_as_arrays():
    a = np.array([[1.5, 2.0], [np.nan, 3.0], [2.5, np.nan], [3.0, 5.0]], dtype=np.float32)
    pre = TablePreprocessor().fit(a)
    _, out = fill_with(pre, a)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out[2, 1] == round(float(out[2, 1]))  # integer-valued column: rounded, dtype kept
    obj = np.array([[1.5, "a"], [np.nan, None], [2.5, "b"], [3.0, "a"]], dtype=object)
    _, out = fill_with(TablePreprocessor().fit(obj), obj)
    assert out.dtype == object and isinstance(out[1, 0], float) and out[1, 1] in ("a", "b")


def test_lists_and_strings_are_objects_not_strings():
    table = as_table([[1.5, "a"], [2.5, "b"]])
    assert table.dtype == object and table[0, 0] == 1.5


def test_all_missing_transform_column_takes_labels():
    fit = pd.DataFrame({"s": ["a", "b", "a"], "n": [1, 2, 3]})
    new = pd.DataFrame({"s": [np.nan, np.nan], "n": [np.nan, 2.0]})
    pre = TablePreprocessor().fit(fit)
    _, out = fill_with(pre, new, 0.0)
    assert out["s"].tolist() == ["a", "a"] and out["n"].dtype == np.float64  # the dtype it came in
    assert out["n"].tolist() == [2.0, 2.0]  # integer values: the fit column was integer


def test_datetime_column_round_trip():
    df = pd.DataFrame({"d": pd.to_datetime(["2020-01-01", None, "2020-01-03"]), "v": [1.0, 2.0, 3.0]})
    pre = TablePreprocessor().fit(df)
    _, out = fill_with(pre, df, 0.0)
    assert out["d"].dtype == df["d"].dtype and out.loc[1, "d"] == pd.Timestamp("2020-01-02")


@pytest.mark.parametrize(
    "table, match",
    [
        (pd.DataFrame({"x": [1, "a", 2.0]}, dtype=object), "column 'x' mixes numbers and strings"),
        (pd.DataFrame({"ok": [1.0, 2.0, 3.0], "x": [1.0, np.inf, 2.0]}), "column 'x' contains inf"),
        (np.array([[1.0, -np.inf], [2.0, 1.0], [3.0, 0.0]]), "column 1 contains inf"),
        (pd.DataFrame({"x": [np.nan, np.nan, np.nan], "y": [1.0, 2.0, 3.0]}), "column 'x' has no observed values"),
        (pd.DataFrame({"x": [1.0, np.nan, np.nan]}), "column 'x' has 1 observed value"),
        (pd.DataFrame({"x": [f"level{i}" for i in range(101)]}), "column 'x' has 101 categories.*encode it"),
        (pd.DataFrame({"x": pd.Series([], dtype=float)}), "0 sample"),
        (pd.DataFrame(index=range(3)), "0 feature"),
        (np.array([[1.0 + 1j], [2.0]]), "Complex data not supported"),
        (pd.DataFrame([[1.0, 2.0, 3.0]] * 3, columns=["a", "a", "b"]), r"duplicate column names \['a'\]"),
    ],
)
def test_bad_fit_input_names_column(table, match):
    with pytest.raises(ValueError, match=match):
        TablePreprocessor().fit(table)


def test_unsupported_object_is_a_type_error():
    with pytest.raises(TypeError, match="column 'x'.*not 'dict'"):
        TablePreprocessor().fit(pd.DataFrame({"x": [{"a": 1}, 1.0, 2.0]}, dtype=object))


@pytest.mark.parametrize(
    "new, match",
    [
        (pd.DataFrame({"num": [1.0], "cat": ["zz"]}), r"column 'cat' has categories not seen at fit: \['zz'\]"),
        (pd.DataFrame({"num": ["a"], "cat": ["u"]}), "column 'num' was numeric at fit but now holds strings"),
        (pd.DataFrame({"num": [1.0], "other": ["u"]}), r"columns differ from fit: missing \['cat'\]"),
        (pd.DataFrame({"cat": ["u"], "num": [1.0]}), "different order"),
        (pd.DataFrame({"num": [1.0]}), "1 columns but the preprocessor was fitted on 2"),
        (pd.DataFrame({"num": [np.inf], "cat": ["u"]}), "column 'num' contains inf"),
    ],
)
def test_bad_transform_input_names_column(new, match):
    pre = TablePreprocessor().fit(pd.DataFrame({"num": [1.0, 2.0, 3.0], "cat": ["u", "v", "u"]}))
    with pytest.raises(ValueError, match=match):
        pre.transform(new)


def test_one_dimensional_input_is_rejected():
    with pytest.raises(ValueError, match="Reshape your data"):
        TablePreprocessor().fit(np.arange(3.0))


@pytest.mark.parametrize("scale", [1e-12, 1e-9, 1.0, 1e12])
def test_any_scale_is_a_scale(scale):
    """A column on a tiny scale keeps its own std (it used to get 1, and imputations 10 orders off)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=50)
    df = pd.DataFrame({"a": a * scale + 3 * scale, "b": a + rng.normal(scale=0.1, size=50)})
    pre = TablePreprocessor().fit(df)
    assert np.isclose(pre.columns_[0].std, df["a"].std(ddof=0)) and not pre.columns_[0].constant
    decoded = pre.decode(0, np.array([0.0, 1.0]))
    np.testing.assert_allclose(decoded, [df["a"].mean(), df["a"].mean() + df["a"].std(ddof=0)], rtol=1e-9)


def test_constant_columns_are_imputed_with_their_value():
    df = pd.DataFrame({"c": [0.5, np.nan, 0.5, 0.5], "d": [7.25, 7.25, np.nan, 7.25], "x": [1.0, 2.0, 3.0, np.nan]})
    pre = TablePreprocessor().fit(df)
    _, out = fill_with(pre, df, 1.7)  # whatever the network says
    assert out["c"].tolist() == [0.5] * 4 and out["d"].tolist() == [7.25] * 4


def test_huge_integer_valued_floats_stay_floats_bit_for_bit():
    big = np.array([1e19, 3e19, np.nan, 2e19, -5e19])
    df = pd.DataFrame({"big": big, "y": [1.0, 2.0, 3.0, np.nan, 5.0]})
    pre = TablePreprocessor().fit(df)
    assert not pre.columns_[0].integer
    _, out = fill_with(pre, df, 0.3)
    assert out["big"].dtype == np.float64
    seen = ~np.isnan(big)
    assert np.array_equal(out["big"].to_numpy()[seen], big[seen]) and np.isfinite(out["big"]).all()


def test_dtypes_do_not_depend_on_where_the_holes_are():
    """An integer-valued float column is float64 after imputation whether or not it had a hole; object
    columns of booleans or strings stay object."""
    df = pd.DataFrame({"f": [1.0, 2.0, 3.0, 4.0], "g": [1.0, np.nan, 3.0, 4.0],
                       "b": np.array([True, None, False, True], dtype=object),
                       "s": np.array(["x", "y", None, "x"], dtype=object)})
    pre = TablePreprocessor().fit(df)
    _, out = fill_with(pre, df, 0.0)
    assert dict(out.dtypes) == dict(df.dtypes)


@pytest.mark.parametrize("dtype", [object, "str"])
def test_numbers_stored_as_strings_are_numeric(dtype):
    """'25.3' is a number (it used to make one of 120 categories, over max_classes); imputations come back
    as strings in the column's dtype, with as many decimals as the observed numbers."""
    tenths = [f"{v:.1f}" for v in np.linspace(10, 40, 120)]
    whole = ["7", "9", "12", "30"] * 30
    tenths[3], whole[2] = None, None
    df = pd.DataFrame({"tenths": tenths, "whole": whole}).astype(dtype)
    pre = TablePreprocessor().fit(df)
    assert [c.kind for c in pre.columns_] == ["numeric", "numeric"] and pre.columns_[1].integer
    _, out = fill_with(pre, df, 0.5)
    assert dict(out.dtypes) == dict(df.dtypes) and not out.isna().any().any()
    assert re.fullmatch(r"\d+\.\d", out.loc[3, "tenths"]) and re.fullmatch(r"\d+", out.loc[2, "whole"])
    assert abs(float(out.loc[3, "tenths"]) - pre.decode(0, np.array([0.5]))[0]) <= 0.05
    seen = df.notna().to_numpy()
    assert (out.to_numpy(dtype=object)[seen] == df.to_numpy(dtype=object)[seen]).all()


@pytest.mark.parametrize(
    "column, unit",
    [
        (pd.to_datetime(["2020-01-01", None, "2020-03-01", "2021-01-01", "1950-05-05"]), "D"),
        (pd.to_datetime(["2020-01-01", None, "2020-03-01", "2021-01-01", "1950-05-05"]).astype("datetime64[s]"), "D"),
        (pd.to_datetime(["2020-01-01 10:00", None, "2020-03-01 13:00", "2021-01-01 00:00", "2020-01-01 01:00"])
         .tz_localize("Europe/Berlin"), "h"),
        (pd.to_timedelta(["1min", None, "5min", "10min", "3min"]), "min"),
        (pd.to_datetime(["2020-01-01 10:00:01.5", None, "2020-01-01 00:00:00.0", "2020-01-02 00:00:00.0", "2020-01-03 00:00:00.0"]), "ms"),
    ],
)
def test_dates_are_imputed_at_their_resolution(column, unit):
    """Daily dates come back as whole days (they used to carry sub-second noise), hourly ones as whole
    hours, in the column's own dtype."""
    df = pd.DataFrame({"t": column, "v": [1.0, 2.0, 3.0, 4.0, 5.0]})
    pre = TablePreprocessor().fit(df)
    assert pre.columns_[0].unit == unit
    _, out = fill_with(pre, df, 0.37)
    assert out["t"].dtype == df["t"].dtype and out["t"].notna().all()
    step = pd.Timedelta(1, unit=unit)
    origin = pd.Timedelta(0) if unit == "min" else pd.Timestamp(0, tz=out["t"].dt.tz)
    assert (out["t"] - origin).iloc[1] % step == pd.Timedelta(0)
    assert out["t"].iloc[[0, 2, 3, 4]].equals(df["t"].iloc[[0, 2, 3, 4]])


def test_categorical_with_unused_levels():
    """A Categorical may declare more levels than max_classes if it uses few (3 of 150 used to be refused);
    imputations are among the used levels and the dtype keeps every declared one."""
    levels = [f"level{i}" for i in range(150)]
    df = pd.DataFrame({"c": pd.Categorical(["level3", "level7", None, "level3", "level9", None], categories=levels),
                       "x": [1.0, 2.0, 3.0, 1.5, 2.5, 0.5]})
    pre = TablePreprocessor().fit(df)
    assert pre.columns_[0].categories == ["level3", "level7", "level9"]
    _, out = fill_with(pre, df, 2.0)
    assert out["c"].dtype == df["c"].dtype and set(out["c"]) <= {"level3", "level7", "level9"}
    assert out["c"].iloc[[0, 1, 3, 4]].equals(df["c"].iloc[[0, 1, 3, 4]])
