"""Edge cases of user input found by an audit: each got a silent wrong answer or an unclear error before its fix.

On the tiny random-init checkpoint: only the form of the answers is checked (finite, in range, cells kept).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icl_diffusion import DiffusionClassifier, DiffusionImputer, DiffusionRegressor
from icl_diffusion.cli import main

pytestmark = pytest.mark.usefixtures("single_thread")

N = 20
HOLES = [1, 4, 7]


def _table(v) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=N).round(3), "c": rng.choice(["x", "y"], N), "v": v})
    df.loc[HOLES, "v"] = np.nan
    return df


@pytest.mark.parametrize("values", [np.linspace(1, 2, N) * 1e300, np.linspace(-1.7, 1.7, N) * 1e308],
                         ids=["1e300", "+-1.7e308"])
def test_huge_magnitudes_are_imputed_finite(values, tiny_checkpoint):
    """Beyond ~1e154 the std's squares overflowed: imputations were -inf (or eigh failed on NaN)."""
    df = _table(values)
    out = DiffusionImputer(checkpoint=tiny_checkpoint, random_state=0).fit_transform(df)
    filled = out.loc[HOLES, "v"].to_numpy()
    assert np.isfinite(filled).all() and (np.abs(filled) / 8 <= np.abs(values).max()).all()
    assert out["v"].drop(HOLES).equals(df["v"].drop(HOLES))


def test_regressor_huge_target_is_finite(tiny_checkpoint):
    X = _table(np.arange(N, dtype=float)).fillna(0.0)
    y = np.linspace(1, 2, N) * 1e300
    pred = DiffusionRegressor(checkpoint=tiny_checkpoint, random_state=0).fit(X, y).predict(X.iloc[:4])
    assert np.isfinite(pred).all() and (pred > 0).all()


def test_regressor_constant_target_is_predicted_exactly(tiny_checkpoint):
    """Every training target 7: the answer is 7 (it was 7 plus the network's noise times the shift-only std 1)."""
    X = _table(np.arange(N, dtype=float))
    reg = DiffusionRegressor(checkpoint=tiny_checkpoint, random_state=0).fit(X, np.full(N, 7.0))
    assert (reg.predict(X.iloc[:4]) == 7.0).all()
    assert (reg.predict_quantiles(X.iloc[:4], (0.1, 0.9), n_samples=4) == 7.0).all()


@pytest.mark.parametrize("y", [np.array(["p", "q", None] * 4, dtype=object),
                               pd.array(["p", "q", None] * 4, dtype="string")], ids=["None", "pd.NA"])
def test_classifier_missing_labels_are_named(y, tiny_checkpoint):
    """A missing label was "'<' not supported between 'NoneType' and 'str'" or "boolean value of NA is ambiguous"."""
    X = _table(np.arange(N, dtype=float)).iloc[:12]
    with pytest.raises(ValueError, match="y has 4 missing values") as info:
        DiffusionClassifier(checkpoint=tiny_checkpoint).fit(X, y)
    assert "\n" not in str(info.value)


def test_string_array_without_holes_keeps_its_dtype(tiny_checkpoint):
    X = np.array([["u", "v"], ["w", "u"], ["v", "v"]])
    out = DiffusionImputer(checkpoint=tiny_checkpoint).fit_transform(X)
    assert out.dtype == X.dtype and np.array_equal(out, X)


def test_cli_single_column_csv_keeps_missing_rows(tiny_checkpoint, tmp_path):
    """A one-column CSV (as a spreadsheet saves one) writes a missing cell as an empty line; pandas skipped those
    lines on reading, so the rows were lost from the output."""
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("v\n1\n\n3\n4\n\n2.5\n")
    assert main(["impute", str(src), "-o", str(out), "--checkpoint", str(tiny_checkpoint)]) == 0
    after = pd.read_csv(out, skip_blank_lines=False)
    assert len(after) == 6 and after["v"].notna().all()
    assert after["v"][[0, 2, 3, 5]].tolist() == [1.0, 3.0, 4.0, 2.5]


def test_cli_empty_file_is_named(tmp_path, capsys):
    src = tmp_path / "empty.csv"
    src.write_text("")
    assert main(["impute", str(src), "-o", str(tmp_path / "out.csv")]) == 1
    err = capsys.readouterr().err
    assert "empty.csv is empty" in err and len(err.strip().splitlines()) == 1


def test_cli_predict_test_columns_in_another_order(tiny_checkpoint, tmp_path):
    """The columns are named: a test table with them in another order is the same query (it was refused)."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x1": rng.normal(size=N).round(2), "x2": rng.choice(["a", "b"], N),
                          "y": rng.choice(["yes", "no"], N)})
    train.to_csv(tmp_path / "train.csv", index=False)
    train[["x2", "x1"]].iloc[:5].to_csv(tmp_path / "test.csv", index=False)
    out = tmp_path / "out.csv"
    assert main(["predict", "--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"),
                 "--target", "y", "-o", str(out), "--checkpoint", str(tiny_checkpoint)]) == 0
    after = pd.read_csv(out)
    assert list(after.columns) == ["x2", "x1", "y"] and after["y"].isin(["yes", "no"]).all()
    assert after[["x2", "x1"]].equals(train[["x2", "x1"]].iloc[:5])


def test_cli_months_stay_as_written(tiny_checkpoint, tmp_path):
    """'2020-01' parsed as an ISO date: the observed cells were written back as '2020-01-01', imputations as days."""
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("a,m\n1,2020-01\n2,2020-02\n3,\n4,2020-05\n5,2020-02\n")
    assert main(["impute", str(src), "-o", str(out), "--checkpoint", str(tiny_checkpoint)]) == 0
    months = [line.split(",")[1] for line in out.read_text().splitlines()[1:]]
    assert [months[k] for k in (0, 1, 3, 4)] == ["2020-01", "2020-02", "2020-05", "2020-02"]
    assert months[2] in {"2020-01", "2020-02", "2020-05"}


@pytest.mark.parametrize("dtype", ["datetime64[D]", "datetime64[ns]", "timedelta64[m]"])
def test_datetime_arrays_are_imputed(dtype, tiny_checkpoint):
    """The README's "numpy array: each column as above" held for DataFrames only: 'unsupported dtype'."""
    X = np.arange(24).reshape(12, 2).astype(dtype)
    X[[1, 5], 0] = np.datetime64("NaT") if dtype.startswith("datetime") else np.timedelta64("NaT")
    out = DiffusionImputer(checkpoint=tiny_checkpoint, random_state=0).fit_transform(X)
    assert out.dtype == X.dtype and not np.isnat(out).any()
    seen = ~np.isnat(X)
    assert np.array_equal(out[seen], X[seen])


def test_cli_added_columns_never_overwrite_the_table(tiny_checkpoint, tmp_path, capsys):
    """A column named _imputation (impute -K) or proba_<class> (predict --proba) was overwritten: its cells lost."""
    src = tmp_path / "in.csv"
    src.write_text("_imputation,b\n10,1\n20,\n30,3\n40,4\n")
    ckpt = ["--checkpoint", str(tiny_checkpoint)]
    assert main(["impute", str(src), "-o", str(tmp_path / "out.csv"), "--n-imputations", "2", *ckpt]) == 1
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"proba_yes": rng.normal(size=N).round(2), "y": rng.choice(["yes", "no"], N)})
    train.to_csv(tmp_path / "train.csv", index=False)
    assert main(["predict", "--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "train.csv"),
                 "--target", "y", "--proba", "-o", str(tmp_path / "out.csv"), *ckpt]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "'_imputation'" in err[0] and "'proba_yes'" in err[1]
    assert not (tmp_path / "out.csv").exists()
