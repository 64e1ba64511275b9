"""Every input gets the right answer or a clear error: tables of inputs through the Python API and the CLI.

Accepted inputs: every observed cell comes back bit for bit, no cell is left missing, every dtype is kept.
Bad inputs: one line naming the column or option (exit status 1 on the CLI), no traceback, nothing written.
"""

from __future__ import annotations

import datetime
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from icl_diffusion import DiffusionImputer
from icl_diffusion.cli import _progress, build_parser, main, read_table

pytestmark = pytest.mark.usefixtures("single_thread")

N = 12
HOLES = [1, 4, 9]  # rows with a missing cell in the column under test


def _base() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=N).round(3), "k": rng.integers(0, 5, N)})


def _with(values, dtype=None) -> pd.DataFrame:
    """The base table and a column ``v`` of ``values`` with holes at HOLES."""
    col = pd.Series(values, dtype=dtype)
    col[HOLES] = None
    return _base().assign(v=col)


def _dates(freq: str, tz=None) -> pd.Series:
    return pd.Series(pd.date_range("2019-12-30", periods=N, freq=freq, tz=tz)[np.random.default_rng(1).permutation(N)])


ACCEPTED = {
    "tiny scale": lambda: _with(np.random.default_rng(2).normal(size=N) * 1e-12),
    "huge integer-valued floats": lambda: _with(np.arange(1, N + 1) * 1e19),
    "constant non-integer": lambda: _with([0.5] * N),
    "integer-valued floats": lambda: _with(np.arange(N, dtype=float)),
    "numbers as strings (object)": lambda: _with([f"{v:.2f}" for v in np.linspace(1, 30, N)], dtype=object),
    "numbers as strings (str)": lambda: _with([str(v) for v in range(N)], dtype="str"),
    "daily dates": lambda: _with(_dates("D")),
    "hourly dates with a time zone": lambda: _with(_dates("h", tz="America/New_York")),
    "durations in minutes": lambda: _with(pd.to_timedelta(np.arange(N) * 7, unit="min")),
    # Timestamps / Timedeltas held as Python objects (a table built row by row, JSON): read as dates and durations,
    # imputed as Timestamps / Timedeltas in the object column (session 48; before, a TypeError)
    "dates as objects": lambda: _with(list(_dates("D")), dtype=object),
    "durations as objects": lambda: _with(list(pd.to_timedelta(np.arange(N) * 7, unit="min")), dtype=object),
    "categorical with unused levels": lambda: _with(pd.Categorical(
        ["a", "b", "c"] * (N // 3), categories=[f"{c}" for c in "abcdefghijk"])),
    "nullable Int64": lambda: _with(pd.array(range(N), dtype="Int64")),
    "booleans (object)": lambda: _with([True, False] * (N // 2), dtype=object),
    "strings": lambda: _with(["red", "green", "blue"] * (N // 3)),
}

# What the CLI can carry in a CSV (it has no dtypes): the cases whose values a CSV writes and reads back.
CSV_ACCEPTED = ["tiny scale", "huge integer-valued floats", "constant non-integer", "integer-valued floats",
                "daily dates", "strings"]


def assert_observed_kept(before: pd.DataFrame, after: pd.DataFrame) -> None:
    """The observed-cells invariant: same values, bit for bit for floats, same Python types otherwise."""
    assert list(after.columns) == list(before.columns) and after.shape == before.shape
    for name in before.columns:
        seen = before[name].notna().to_numpy()
        if isinstance(before[name].dtype, np.dtype) and before[name].dtype.kind in "fMm":
            a, b = before[name].to_numpy()[seen], after[name].to_numpy()[seen]
            assert a.dtype == b.dtype and np.array_equal(a.view(np.int64), b.view(np.int64)), name
        else:
            a, b = before[name].astype(object)[seen], after[name].astype(object)[seen]
            assert all(type(u) is type(w) and u == w for u, w in zip(a, b)), name


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_api_accepts(case, tiny_checkpoint):
    df = ACCEPTED[case]()
    out = DiffusionImputer(checkpoint=tiny_checkpoint, random_state=0).fit_transform(df)
    assert dict(out.dtypes) == dict(df.dtypes)
    assert not out.isna().any().any()
    assert_observed_kept(df, out)


def test_imputations_at_the_right_resolution(tiny_checkpoint):
    """The answers of the fixed cases: whole days, the constant, whole numbers in text, observed levels."""
    imputer = DiffusionImputer(checkpoint=tiny_checkpoint, random_state=0)
    days = imputer.fit_transform(ACCEPTED["daily dates"]())["v"]
    assert (days == days.dt.normalize()).all()
    as_objects = imputer.fit_transform(ACCEPTED["dates as objects"]())["v"]
    assert all(isinstance(v, pd.Timestamp) and v == v.normalize() for v in as_objects)
    minutes = imputer.fit_transform(ACCEPTED["durations as objects"]())["v"]
    assert all(isinstance(v, pd.Timedelta) and v == v.round("min") for v in minutes)
    assert (imputer.fit_transform(ACCEPTED["constant non-integer"]())["v"] == 0.5).all()
    text = imputer.fit_transform(ACCEPTED["numbers as strings (str)"]())["v"]
    assert text[HOLES].str.fullmatch(r"-?\d+").all()
    cats = imputer.fit_transform(ACCEPTED["categorical with unused levels"]())["v"]
    assert set(cats) <= {"a", "b", "c"} and len(cats.cat.categories) == 11


@pytest.mark.parametrize("case", CSV_ACCEPTED)
def test_cli_accepts(case, tiny_checkpoint, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    ACCEPTED[case]().to_csv(src, index=False)
    assert main(["impute", str(src), "-o", str(out), "--checkpoint", str(tiny_checkpoint)]) == 0
    before, after = read_table(src), read_table(out)
    assert not after.isna().any().any()
    after = after.astype(dict(before.dtypes))  # a CSV has no dtypes: integers read with holes are floats
    assert_observed_kept(before, after)
    if case == "daily dates":
        assert after["v"].dtype.kind == "M" and (after["v"] == after["v"].dt.normalize()).all()
        assert len(out.read_text().splitlines()[2].split(",")[2]) == len("2020-01-01")  # written as a date


# (estimator arguments, table, error type, message): each message names the column or argument.
API_BAD = [
    ({}, pd.DataFrame([[1.0, 2.0, 3.0]] * 3, columns=["a", "a", "b"]), ValueError, r"duplicate column names \['a'\]"),
    ({}, _base().assign(v=pd.Series([1, "a"] * (N // 2), dtype=object)), ValueError, "column 'v' mixes numbers"),
    ({}, _base().assign(v=[1.0, np.inf] * (N // 2)), ValueError, "column 'v' contains inf"),
    ({}, _base().assign(v=np.nan), ValueError, "column 'v' has no observed values"),
    ({}, _base().assign(v=[f"s{i}" for i in range(N)]).iloc[:0], ValueError, "0 sample"),
    ({}, pd.DataFrame({"v": [{"a": 1}] * 3}), TypeError, "column 'v'"),
    ({}, _base().assign(v=pd.Series([datetime.date(2020, 1, i + 1) for i in range(N)], dtype=object)), ValueError,
     "column 'v' holds datetime.date objects: convert it with pd.to_datetime"),
    ({}, _base().assign(v=pd.Series(list(_dates("D", tz="UTC")), dtype=object)), ValueError,
     "column 'v' holds time-zone-aware dates as objects"),
    ({"device": "tpu"}, _base(), ValueError, "unknown device 'tpu'"),
    ({"device": "cuda"}, _base(), ValueError, "device 'cuda' is not available"),
]


@pytest.mark.parametrize("kwargs, table, error, match", API_BAD)
def test_api_refuses(kwargs, table, error, match, tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a CPU-only torch build
    with pytest.raises(error, match=match) as info:
        DiffusionImputer(checkpoint=tiny_checkpoint, **kwargs).fit(table)
    assert "\n" not in str(info.value)


FILES = {
    "good.csv": "u,v\n1,2\n2,\n3,4\n",
    "reg.csv": "x,y\n1.5,2\n2.5,3\n3.5,1\n,4\n4.5,\n",
    "dup.csv": "a,a,b\n1,2,3\n2,,4\n3,4,\n",
    "mixed.csv": "u,v\n1,2\n2,a\n3,\n",
    "inf.csv": "u,v\n1,2\n2,inf\n3,\n",
    "empty_col.csv": "u,v\n1,\n2,\n3,\n",
    "tenrows.csv": "u,v\n" + "".join(f"{i},{i % 3}\n" for i in range(10)),
}

# (command line, what stderr names): {ckpt} is the tiny checkpoint, {train} a Lightning checkpoint.
CLI_BAD = [
    ("impute missing.csv -o out.csv", "no such file: missing.csv"),
    ("impute dup.csv -o out.csv", "column name 'a' appears more than once"),
    ("impute mixed.csv -o out.csv --checkpoint {ckpt}", "column 'v' mixes numbers and strings"),
    ("impute inf.csv -o out.csv --checkpoint {ckpt}", "column 'v' contains inf"),
    ("impute empty_col.csv -o out.csv --checkpoint {ckpt}", "column 'v' has no observed values"),
    ("impute good.csv -o out.xlsx --checkpoint {ckpt}", "unsupported table format '.xlsx'"),
    ("impute good.csv -o out --checkpoint {ckpt}", "unsupported table format '(no extension)'"),
    ("impute good.csv -o out.csv --plot p.jpg --checkpoint {ckpt}", "--plot p.jpg: the file must end in one of"),
    ("impute good.csv -o out.csv --device tpu", "--device tpu"),
    ("impute good.csv -o out.csv --device cuda", "--device cuda"),
    ("impute good.csv -o out.csv --n-imputations 0", "--n-imputations"),
    ("impute good.csv -o out.csv --checkpoint nowhere.safetensors", "checkpoint not found"),
    ("impute good.csv -o out.csv --checkpoint good.csv", "not an icl-diffusion checkpoint"),
    ("predict --train good.csv --test good.csv --target zz -o out.csv", "target column 'zz'"),
    ("predict --train reg.csv --test reg.csv --target x -o out.csv --proba --checkpoint {ckpt}", "--proba"),
    ("predict --train good.csv --test good.csv --target v -o out.csv --quantiles 0.1 --checkpoint {ckpt}",
     "--quantiles is for regression"),
    ("predict --train reg.csv --test reg.csv --target x -o out.csv --quantiles 5", "--quantiles must be"),
    ("pretrain bogus=1", "Could not override 'bogus'"),
    ("pretrain model=nonexistent", "Could not find 'model/nonexistent'"),
    ("pretrain trainer.max_steps=abc", "setting 'trainer.max_steps=abc': trainer.max_steps takes an integer"),
    ("pretrain optim.lr=fast", "optim.lr takes a number"),
    ("finetune --from missing.safetensors", "checkpoint not found: missing.safetensors"),
    ("finetune --from good.csv", "good.csv is not an icl-diffusion checkpoint"),
    ("finetune --data tenrows.csv -o out.safetensors --from missing.safetensors", "checkpoint not found"),
    ("finetune --data tenrows.csv -o out.safetensors --from {ckpt} max_steps=abc", "max_steps takes an integer"),
    ("finetune --data tenrows.csv -o out.xlsx", "-o out.xlsx"),
    ("finetune --data missing.csv -o out.safetensors --from {ckpt}", "no such file: missing.csv"),
    ("export missing.ckpt -o out.safetensors", "no such file: missing.ckpt"),
    ("export good.csv -o out.safetensors", "good.csv is not a Lightning checkpoint"),
    ("export {ckpt} -o out.safetensors", "is not a checkpoint of an icl-diffusion training run"),
    ("export {train} -o out.ckpt", "-o out.ckpt"),
]


@pytest.mark.parametrize("command, message", CLI_BAD)
def test_cli_refuses(command, message, tmp_path, tiny_checkpoint, monkeypatch, capsys):
    if command.split()[0] in ("pretrain", "finetune", "export"):
        # Imported before the chdir: from tmp_path, tests/priors (no package) would shadow priors.
        pytest.importorskip("icl_diffusion.train")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a CPU-only torch build
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    shutil.copy(tiny_checkpoint, tmp_path / "tiny.safetensors")
    torch.save({"hyper_parameters": {}, "state_dict": {}}, tmp_path / "train.ckpt")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(command.format(ckpt="tiny.safetensors", train="train.ckpt").split()) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no run directory


def test_version_and_demo_options(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip().startswith("icl-diffusion 0.")
    assert main(["demo", "--help"]) == 0
    text = capsys.readouterr().out
    for unused in ("--na-values", "--method", "--n-steps", "--variance-mix"):  # demo reads its own table
        assert unused not in text
    assert "--progress" in text and "--no-progress" in text


@pytest.mark.parametrize("flag, tty, shown", [([], True, True), ([], False, False), (["--no-progress"], True, False),
                                              (["--progress"], False, True)])
def test_progress_bar_default_follows_the_terminal(flag, tty, shown, monkeypatch):
    monkeypatch.setattr("sys.stderr.isatty", lambda: tty)
    for command in (["impute", "a.csv", "-o", "b.csv"], ["finetune", "--data", "a.csv"], ["pretrain"]):
        assert _progress(build_parser().parse_args([*command, *flag])) is shown
