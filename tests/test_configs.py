"""Every option of every Hydra config group composes, resolves and instantiates (no training here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning_utilities.core.rank_zero import rank_zero_only
from omegaconf import OmegaConf, open_dict

from icl_diffusion.train import CONF_DIR, build, build_callbacks, compose
from priors import PriorConfig, PriorDataset

GROUPS = ("model", "prior", "trainer", "logger", "callbacks", "experiment", "debug")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


def on_this_machine(cfg):
    """GPU settings replaced by CPU ones where there is no GPU: the options still build everything else."""
    if not torch.cuda.is_available():
        with open_dict(cfg):
            if cfg.trainer.get("accelerator") == "gpu":
                cfg.trainer.accelerator = "cpu"
                cfg.trainer.devices = 1
            cfg.prior_device = "cpu"
    return cfg


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes_and_builds(group, option, tmp_path):
    cfg = compose([f"{group}={option}", f"out_dir={tmp_path}"])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    module, _, trainer = build(on_this_machine(cfg))
    assert module.model.cfg.d_model == cfg.model.d_model
    if not cfg.trainer.get("fast_dev_run"):  # fast_dev_run runs one step whatever max_steps says
        assert trainer.max_steps == cfg.trainer.max_steps
    # The cosine ends where training does, unless an experiment replays a run stopped early on a longer schedule.
    assert module.optim_cfg.max_steps == cfg.optim.max_steps >= cfg.trainer.max_steps
    if group == "logger":
        assert trainer.logger is not None and type(trainer.logger).__name__.lower().startswith(option)


def test_group_options_exist():
    expected = {
        "model": {"tiny", "small", "medium", "base"},
        "trainer": {"cpu", "gpu", "ddp", "ddp_sim", "slurm"},
        "logger": {"csv", "wandb"},
        "debug": {"fast_dev_run"},
    }
    for group, names in expected.items():
        assert names <= set(options(group)), group


@pytest.mark.parametrize("option", options("prior"))
def test_every_prior_option_draws_a_batch(option):
    cfg = compose([f"prior={option}"])
    batch = next(iter(PriorDataset(PriorConfig(**OmegaConf.to_container(cfg.prior)), seed=0)))
    assert batch["x"].dim() == 3 and torch.isfinite(batch["x"]).all()


def test_callbacks_checkpoint_every_n_steps_knob(tmp_path):
    cfg = compose([f"out_dir={tmp_path}", "callbacks.checkpoint_every_n_steps=7"])
    ckpt = next(cb for cb in build_callbacks(cfg) if type(cb).__name__ == "ModelCheckpoint")
    assert ckpt._every_n_train_steps == 7 and Path(ckpt.dirpath) == tmp_path / "checkpoints"
    cfg = compose([f"out_dir={tmp_path}", "callbacks.learning_curves=null"])
    assert [type(cb).__name__ for cb in build_callbacks(cfg)] == ["ModelCheckpoint"]


def test_wandb_is_offline_unless_told():
    assert compose(["logger=wandb"]).logger.offline is True
    assert compose(["logger=wandb", "logger.offline=false"]).logger.offline is False


def test_gpu_trainers_use_bf16_and_ddp():
    for option in ("gpu", "ddp", "slurm"):
        cfg = compose([f"trainer={option}"])
        assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.gradient_clip_val == 1.0
    assert compose(["trainer=ddp"]).trainer.strategy.startswith("ddp")
    assert compose(["trainer=cpu"]).trainer.precision == "32-true"  # bf16 is ~300x slower on the dev CPU


def test_gpu_recipe_fills_the_cell_budget():
    """PriorConfig.fill_budget is off by default (a CPU gains nothing from fuller batches) and on in gpu_base,
    the recipe it was made for."""
    assert not PriorConfig().fill_budget
    assert PriorConfig(**OmegaConf.to_container(compose(["experiment=gpu_base"]).prior)).fill_budget


def test_slurm_trainer_reads_the_allocation(monkeypatch, tmp_path):
    """Under srun, devices/num_nodes come from the allocation and Lightning picks SLURMEnvironment."""
    env = {"SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_JOB_NUM_NODES": "2",
           "SLURM_NNODES": "2", "SLURM_JOB_NAME": "pretrain", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
           "SLURM_NODEID": "1", "SLURM_NODELIST": "node[01-02]", "SLURM_JOB_ID": "42"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert compose(["trainer=slurm"]).out_dir == "runs/42"  # every task, and the requeued job, agree
    cfg = compose(["trainer=slurm", f"out_dir={tmp_path}"])
    assert cfg.trainer.devices == 4 and cfg.trainer.num_nodes == 2
    assert SLURMEnvironment.detect()
    with open_dict(cfg):
        cfg.trainer.accelerator = "cpu"  # the cluster environment does not depend on the accelerator
    # Building the trainer sets the process-wide rank of rank_zero_only to 5: left so, every later run in this
    # process would skip what only rank 0 does (a CSV logger's metrics.csv).
    monkeypatch.setattr(rank_zero_only, "rank", getattr(rank_zero_only, "rank", None), raising=False)
    _, _, trainer = build(cfg)
    environment = trainer.strategy.cluster_environment
    assert isinstance(environment, SLURMEnvironment)
    assert (environment.global_rank(), environment.local_rank(), environment.node_rank()) == (5, 1, 1)
    assert trainer.world_size == 8


def test_yaml_files_only_override_the_schema():
    """One source for each default: `TrainConfig` (icl_diffusion/train.py) and the dataclasses it names. No YAML
    file under conf/ sets a typed setting to the value it already has there (a repeated default would drift
    from its dataclass unnoticed), and every key a file sets is one the schema knows."""
    from icl_diffusion.train import TrainConfig

    schema = OmegaConf.structured(TrainConfig)
    for path in sorted(Path(CONF_DIR).rglob("*.yaml")):
        raw = OmegaConf.load(path)
        group = path.parent.name
        if group in ("model", "diffusion"):  # a group file is the node it fills
            raw = OmegaConf.create({group: raw})
        elif group not in ("experiment", "debug") and path.parent != Path(CONF_DIR):
            continue  # prior, trainer, logger, callbacks: untyped overrides of their own libraries
        for key, value in _leaves(raw):
            if key.split(".")[0] in ("defaults", "hydra", "prior", "trainer", "logger", "callbacks",
                                     "init_overrides"):
                continue
            parts = key.split(".")
            prefixes = (".".join(parts[:i]) for i in range(1, len(parts)))
            if any(OmegaConf.get_type(OmegaConf.select(schema, p, default=None)) is dict for p in prefixes):
                continue  # a key of a mapping setting (optim.lr_scale: parameter prefixes hold dots)
            default = OmegaConf.select(schema, key, throw_on_missing=False, default="<unknown>")
            assert default != "<unknown>", f"{path.name}: {key} is no setting of TrainConfig"
            if not (isinstance(value, str) and value.startswith("${")):
                assert value != default, f"{path.name}: {key}: {value!r} repeats the schema's default"


def _leaves(node, prefix=""):
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node)  # interpolations stay strings
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize("override", ["optim.lr=abc", "model.d_modle=64", "loss.p_t_max=[1]", "seed=x"])
def test_a_wrong_override_fails_at_composition(override):
    with pytest.raises(Exception, match="override|Could not"):
        compose([override])
