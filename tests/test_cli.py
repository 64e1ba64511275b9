"""The icl-diffusion command line, end to end through ``main([...])`` on the tiny checkpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch

import icl_diffusion
from icl_diffusion.cli import main

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def table_csv(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "x": rng.normal(size=30).round(3),
        "n": rng.integers(0, 9, 30),
        "kind": rng.choice(["a", "b"], 30),
    })
    df.loc[[1, 4, 7], "x"] = np.nan
    df.loc[[2, 5], "n"] = np.nan
    df.loc[[3, 8], "kind"] = None
    path = tmp_path / "in.csv"
    df.to_csv(path, index=False)
    return path


def test_impute(table_csv, tiny_checkpoint, tmp_path):
    out = tmp_path / "out.csv"
    assert main(["impute", str(table_csv), "-o", str(out), "--checkpoint", str(tiny_checkpoint)]) == 0
    before, after = pd.read_csv(table_csv), pd.read_csv(out)
    assert after.shape == before.shape and not after.isna().any().any()
    seen = before.notna()
    assert (after[seen].fillna(0) == before[seen].fillna(0)).all().all()
    assert after["n"].dtype == np.int64


def test_impute_multiple_long_format(table_csv, tiny_checkpoint, tmp_path):
    out = tmp_path / "out.csv"
    args = ["impute", str(table_csv), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--n-imputations", "3",
            "--n-steps", "2", "--seed", "1"]
    assert main(args) == 0
    after = pd.read_csv(out)
    assert list(after.columns) == ["_imputation", "x", "n", "kind"] and len(after) == 90
    assert sorted(after["_imputation"].unique()) == [1, 2, 3] and not after.isna().any().any()


def test_impute_parquet(table_csv, tiny_checkpoint, tmp_path):
    pytest.importorskip("pyarrow")
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pd.read_csv(table_csv).to_parquet(src)
    assert main(["impute", str(src), "-o", str(out), "--checkpoint", str(tiny_checkpoint)]) == 0
    assert not pd.read_parquet(out).isna().any().any()


@pytest.mark.parametrize("src_name, out_name", [("in.tsv", "out.tsv"), ("in.csv.gz", "out.csv.gz")])
def test_impute_tsv_and_compressed_csv(src_name, out_name, table_csv, tiny_checkpoint, tmp_path):
    src, out = tmp_path / src_name, tmp_path / out_name
    pd.read_csv(table_csv).to_csv(src, sep="\t" if src_name.endswith(".tsv") else ",", index=False)
    assert main(["impute", str(src), "-o", str(out), "--checkpoint", str(tiny_checkpoint)]) == 0
    after = pd.read_csv(out, sep="\t" if out_name.endswith(".tsv") else ",")
    assert list(after.columns) == ["x", "n", "kind"] and not after.isna().any().any()


def test_predict(table_csv, tiny_checkpoint, tmp_path):
    df = pd.read_csv(table_csv)
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    df.iloc[:20].to_csv(train, index=False)
    df.iloc[20:].drop(columns=["kind"]).to_csv(test, index=False)
    out = tmp_path / "pred.csv"
    common = ["--train", str(train), "--test", str(test), "-o", str(out), "--checkpoint", str(tiny_checkpoint)]
    assert main(["predict", *common, "--target", "kind", "--proba"]) == 0
    pred = pd.read_csv(out)
    assert set(pred["kind"]) <= {"a", "b"} and np.allclose(pred["proba_a"] + pred["proba_b"], 1)
    df.iloc[20:].drop(columns=["x"]).to_csv(test, index=False)
    assert main(["predict", *common, "--target", "x", "--quantiles", "0.1,0.9"]) == 0
    pred = pd.read_csv(out)
    assert np.isfinite(pred[["x", "x_q0.1", "x_q0.9"]].to_numpy()).all() and len(pred) == 10


def predict_x_command(table_csv, tiny_checkpoint, tmp_path) -> list[str]:
    """``predict`` arguments for column x of the first 20 rows of the table, asked of the others (no -o)."""
    df = pd.read_csv(table_csv)
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    df.iloc[:20].to_csv(train, index=False)
    df.iloc[20:].drop(columns=["x"]).to_csv(test, index=False)
    return ["predict", "--train", str(train), "--test", str(test), "--target", "x", "--checkpoint",
            str(tiny_checkpoint)]


def test_predict_ensemble_folds_option(table_csv, tiny_checkpoint, tmp_path, capsys):
    """--ensemble-folds reaches the regressor (0: the equal average, another prediction than the default 3);
    1 is a one-line error naming the option's parameter."""
    common = predict_x_command(table_csv, tiny_checkpoint, tmp_path)
    preds = []
    for folds in ([], ["--ensemble-folds", "0"]):
        assert main([*common, "-o", str(tmp_path / f"p{len(folds)}.csv"), *folds]) == 0
        preds.append(pd.read_csv(tmp_path / f"p{len(folds)}.csv")["x"])
    assert not preds[0].equals(preds[1])
    capsys.readouterr()
    assert main([*common, "-o", str(tmp_path / "bad.csv"), "--ensemble-folds", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ensemble_folds must be 0 (off), an integer >= 2" in err[0]


def test_demo(tiny_checkpoint, capsys):
    assert main(["demo", "--checkpoint", str(tiny_checkpoint), "--rows", "3"]) == 0
    text = capsys.readouterr().out
    assert "Before" in text and "After" in text and "NaN" in text.split("After")[0]
    assert "NaN" not in text.split("After")[1]


def test_demo_with_the_progress_bar_on_as_in_a_terminal(capsys):
    """The shipped model with a real tqdm bar (on by default when stderr is a terminal): the bar ticks from a
    forward hook, and tqdm's update returns True when it redraws, which a hook must not pass on as the
    network's output (the demo crashed on a terminal until session 8)."""
    assert main(["demo", "--rows", "2", "--progress"]) == 0
    out, err = capsys.readouterr()
    assert "After" in out and "imputing" in err


def test_na_values(tmp_path, tiny_checkpoint):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("u,v\n1,2\n2,?\n3,5\n")
    assert main(["impute", str(src), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--na-values", "?"]) == 0
    assert pd.read_csv(out)["v"].dtype == np.int64


def test_usage_errors_and_help(capsys):
    assert main(["impute"]) == 2
    assert "required" in capsys.readouterr().err
    for command in ([], ["impute"], ["predict"], ["demo"], ["pretrain"], ["finetune"], ["export"]):
        assert main([*command, "--help"]) == 0
        assert "usage: icl-diffusion" in capsys.readouterr().out


def test_training_commands_without_train_module(monkeypatch, capsys):
    monkeypatch.delattr(icl_diffusion, "train", raising=False)
    monkeypatch.setitem(sys.modules, "icl_diffusion.train", None)  # import fails
    assert main(["pretrain", "trainer.max_steps=1"]) == 2
    assert "could not import icl_diffusion.train" in capsys.readouterr().err


def test_training_commands_call_train(monkeypatch, tmp_path, tiny_checkpoint):
    monkeypatch.chdir(tmp_path)
    shutil.copy(tiny_checkpoint, "m.safetensors")  # finetune --from loads it before the run starts
    torch.save({"hyper_parameters": {}, "state_dict": {}}, "last.ckpt")
    calls = []
    fake = types.ModuleType("icl_diffusion.train")
    fake.compose = lambda overrides: dict(o.lstrip("+").split("=", 1) for o in overrides)
    fake.hydra_main = lambda overrides: calls.append(overrides)
    fake.export_lightning_checkpoint = lambda ckpt, path: calls.append((ckpt, path)) or path
    monkeypatch.setattr(icl_diffusion, "train", fake, raising=False)
    monkeypatch.setitem(sys.modules, "icl_diffusion.train", fake)
    no_bar = "++trainer.enable_progress_bar=false"  # stderr is no terminal here
    assert main(["pretrain", "trainer.max_steps=1"]) == 0
    assert main(["finetune", "--from", "m.safetensors", "seed=1"]) == 0
    assert main(["export", "last.ckpt", "-o", "m.safetensors"]) == 0
    assert main(["pretrain", "--progress", "a=1"]) == 0
    assert calls == [["trainer.max_steps=1", no_bar], ["seed=1", "init_from=m.safetensors", no_bar],
                     ("last.ckpt", "m.safetensors"), ["a=1", "++trainer.enable_progress_bar=true"]]

    def hydra_style():  # a @hydra.main function reads sys.argv
        calls.append(sys.argv[1:])

    fake.hydra_main = hydra_style
    assert main(["pretrain", "a=1", "trainer.enable_progress_bar=true"]) == 0
    assert calls[-1] == ["a=1", "trainer.enable_progress_bar=true"]


def test_python_dash_m_help():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "icl_diffusion.cli", "--help"], capture_output=True, text=True,
                            env=env, timeout=120, check=False)
    assert result.returncode == 0
    for command in ("impute", "predict", "demo", "pretrain", "finetune", "export"):
        assert command in result.stdout


def _option_outputs_and_error(table, checkpoint, tmp_path, capsys, option: str, values: tuple[str, str], bad: str):
    """``impute`` with ``option`` at each of two ``values`` (exit 0; the two filled tables), then at ``bad``
    (exit 1; the lines it printed to stderr)."""
    outs = []
    for value in values:
        out = tmp_path / f"{option.strip('-')}-{value}.csv"
        assert main(["impute", str(table), "-o", str(out), "--checkpoint", str(checkpoint), option, value]) == 0
        outs.append(pd.read_csv(out))
    capsys.readouterr()
    assert main(["impute", str(table), "-o", str(tmp_path / "x.csv"), "--checkpoint", str(checkpoint), option,
                 bad]) == 1
    return outs, capsys.readouterr().err.strip().splitlines()


def test_ensemble_option(table_csv, tiny_checkpoint, tmp_path, capsys):
    """--ensemble reaches the engine (one member: the plain one call, another table), a wrong member is a
    one-line error before any work."""
    (one, two), err = _option_outputs_and_error(table_csv, tiny_checkpoint, tmp_path, capsys, "--ensemble",
                                                ("identity", "identity,yeo_johnson"), "log")
    assert not one.equals(two)
    assert len(err) == 1 and "--ensemble log" in err[0] and "yeo_johnson" in err[0]


@pytest.mark.parametrize("option, rows, values", [
    ("--local-context-rows", 300, ("0", "32")),  # off, and 32-row local contexts
    ("--context-cells", 600, ("0", "10240")),  # 512 key rows of the 600, and all of them (3 columns)
])
def test_count_options(option, rows, values, tiny_checkpoint, tmp_path, capsys, monkeypatch):
    """A count option reaches the engine (its two values: two tables), a negative count is a one-line error."""
    import torch

    import icl_diffusion.inference

    if option == "--local-context-rows":  # the tiny model's local estimates lose on held cells: weigh them in
        monkeypatch.setattr(icl_diffusion.inference, "choose_weights", lambda x, *_: torch.ones(x.shape[1]))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3))
    x[rng.random(x.shape) < 0.2] = np.nan
    table = tmp_path / "t.csv"
    pd.DataFrame(x, columns=["a", "b", "c"]).to_csv(table, index=False)
    (one, other), err = _option_outputs_and_error(table, tiny_checkpoint, tmp_path, capsys, option, values, "-1")
    assert not one.equals(other)
    name = option.strip("-").replace("-", "_")
    assert len(err) == 1 and f"{name} must be an integer >= 0" in err[0]


def test_blend_inputs_option(tiny_checkpoint, tmp_path):
    """--blend-inputs / --no-blend-inputs reach the engine: the tiny random model's estimates blended with its
    closed-form Gaussian input on a strongly linear table are another table; observed cells stay."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 1))
    x = z @ rng.normal(size=(1, 4)) + 0.1 * rng.normal(size=(200, 4))
    x[rng.random(x.shape) < 0.2] = np.nan
    table = tmp_path / "t.csv"
    pd.DataFrame(x, columns=list("abcd")).to_csv(table, index=False)
    outs = []
    for flag in ("--no-blend-inputs", "--blend-inputs"):
        out = tmp_path / f"{flag}.csv"
        assert main(["impute", str(table), "-o", str(out), "--checkpoint", str(tiny_checkpoint), flag]) == 0
        outs.append(pd.read_csv(out).to_numpy())
    observed = ~np.isnan(x)
    assert np.array_equal(outs[0][observed], x[observed]) and np.array_equal(outs[1][observed], x[observed])
    assert not np.allclose(outs[0], outs[1])


def test_predict_leaves_the_blend_off_unless_asked(table_csv, tiny_checkpoint, tmp_path, monkeypatch):
    """predict without --blend-inputs keeps the predictors' default (no blend: the target would not change)."""
    from icl_diffusion import estimators

    seen = []
    original = estimators.DiffusionRegressor.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self.blend_inputs)

    monkeypatch.setattr(estimators.DiffusionRegressor, "__init__", spy)
    df = pd.read_csv(table_csv)
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    df.iloc[:20].to_csv(train, index=False)
    df.iloc[20:].drop(columns=["x"]).to_csv(test, index=False)
    common = ["predict", "--train", str(train), "--test", str(test), "--target", "x", "--checkpoint",
              str(tiny_checkpoint), "--task", "regression"]
    assert main([*common, "-o", str(tmp_path / "a.csv")]) == 0
    assert main([*common, "-o", str(tmp_path / "b.csv"), "--blend-inputs"]) == 0
    assert seen[0] is estimators.PREDICTOR_BLEND_INPUTS and seen[-1] is True


def test_predict_extrapolate_option(table_csv, tiny_checkpoint, tmp_path, monkeypatch):
    """--extrapolate auto|on|off reaches the regressor as "auto", True, False (the choice it then makes:
    ``extrapolate_``)."""
    from icl_diffusion import estimators

    seen = []
    original = estimators.DiffusionRegressor.fit

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        seen.append((self.extrapolate, self.extrapolate_))
        return out

    monkeypatch.setattr(estimators.DiffusionRegressor, "fit", spy)
    common = predict_x_command(table_csv, tiny_checkpoint, tmp_path)
    for option in ("auto", "on", "off"):
        assert main([*common, "-o", str(tmp_path / f"{option}.csv"), "--extrapolate", option]) == 0
    assert seen[0][0] == "auto" and isinstance(seen[0][1], bool) and seen[1:] == [(True, True), (False, False)]


def test_predict_tree_weight_option(table_csv, tiny_checkpoint, tmp_path, capsys):
    """--tree-weight reaches both predictors (0: the network alone, 1: the trees alone, other predictions than
    each other); a value out of range is a one-line error naming the parameter."""
    common = predict_x_command(table_csv, tiny_checkpoint, tmp_path)
    preds = []
    for weight in ("0", "1"):
        assert main([*common, "-o", str(tmp_path / f"p{weight}.csv"), "--tree-weight", weight]) == 0
        preds.append(pd.read_csv(tmp_path / f"p{weight}.csv")["x"])
    assert not preds[0].equals(preds[1])
    pd.read_csv(table_csv).iloc[20:].drop(columns=["kind"]).to_csv(tmp_path / "test.csv", index=False)
    common[common.index("x")] = "kind"
    assert main([*common, "-o", str(tmp_path / "k.csv"), "--tree-weight", "0.5", "--proba"]) == 0
    capsys.readouterr()
    assert main([*common, "-o", str(tmp_path / "bad.csv"), "--tree-weight", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tree_weight must be 'auto' (cross-fitted) or a number in [0, 1], got 2.0" in err[0]
