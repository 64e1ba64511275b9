"""Pretraining entry points.

- ``train(cfg)``: pretrain, resume or fine-tune as a composed config says (tests and notebooks call it).
- ``hydra_main(overrides)``: the Hydra application; ``python -m icl_diffusion.train key=value ...`` and
  ``icl-diffusion pretrain|finetune`` (which passes its overrides as a list) both land here.
- ``export_main(argv)``: ``icl-diffusion export LIGHTNING.ckpt -o OUT.safetensors``.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import hydra
import lightning as L
import torch
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from .checkpoint import load_checkpoint, save_checkpoint
from .lit import DiffusionConfig, DiffusionLitModule, OptimConfig, PriorDataModule, ValConfig
from .model import DenoiserConfig
from .resources import shipped_dir
from .training import LossConfig

log = logging.getLogger(__name__)

CONF_DIR = str(shipped_dir("conf"))


@dataclass
class TrainConfig:
    """The schema of ``conf/config.yaml`` (Hydra's ``schema`` node, first in its defaults list): every
    setting's one default. The YAML files only override it, and Hydra checks every file and command-line
    override against it (an unknown key or a wrongly typed value is an error at composition, before any run).

    The network, diffusion, loss, optimizer and validation settings are their dataclasses; the prior is a
    dict of overrides of ``priors.PriorConfig`` (its weight dicts replace the defaults whole, which a typed
    merge would not do); trainer, logger and callbacks are Lightning's own arguments."""

    model: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    val: ValConfig = field(default_factory=ValConfig)
    prior: dict[str, Any] = field(default_factory=dict)  # `++prior.<field>=value` sets any PriorConfig field
    trainer: dict[str, Any] = field(default_factory=dict)  # lightning.Trainer arguments
    logger: Any = None  # a `_target_` node, or None for no logger
    callbacks: dict[str, Any] = field(default_factory=dict)  # `_target_` nodes become callbacks; the rest are knobs
    seed: int = 0
    # Under SLURM the job id: every srun task and a requeued job find the same directory.
    out_dir: str = "runs/${oc.env:SLURM_JOB_ID,${now:%Y-%m-%d_%H-%M-%S}}"
    ckpt_path: Optional[str] = None  # "last": resume from out_dir (last.ckpt or a SLURM hpc_ckpt), fresh if none
    export_path: Optional[str] = None  # write an inference checkpoint (safetensors, fp16) here at the end
    init_from: Optional[str] = None  # start from an inference checkpoint's weights and architecture
    # With init_from: model settings that keep the weights' shapes, e.g. `+init_overrides.gaussian_em_iters=10`.
    init_overrides: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 0  # DataLoader workers generating prior batches (each its own stream)
    batch_size: Optional[int] = None  # None: the prior sizes each batch by its cell budget
    prior_device: str = "cpu"  # where prior batches are generated: cpu, or cuda (the rank's own GPU)
    torch_threads: Optional[int] = None  # CPU threads per process; 1 on a shared machine


ConfigStore.instance().store(name="schema", node=TrainConfig)


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


class ExportAtEnd(L.Callback):
    """Writes the inference checkpoint when training ends, from the process that trained (with
    ``ddp_spawn`` the caller's copy of the module never sees the step count or tables seen)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path

    def on_train_end(self, trainer: L.Trainer, pl_module: DiffusionLitModule) -> None:
        if trainer.is_global_zero:
            export(pl_module, self.path)


def build_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """Every entry of ``cfg.callbacks`` with a ``_target_`` (the rest are knobs those entries read), and
    the export at the end if ``cfg.export_path`` is set."""
    callbacks = [hydra.utils.instantiate(node) for node in (cfg.get("callbacks") or {}).values()
                 if isinstance(node, DictConfig) and "_target_" in node]
    if cfg.get("export_path"):
        callbacks.append(ExportAtEnd(cfg.export_path))
    return callbacks


def build(cfg: DictConfig) -> tuple[DiffusionLitModule, PriorDataModule, L.Trainer]:
    """The module, data and trainer a config describes (nothing runs)."""
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    L.seed_everything(cfg.seed, workers=True)
    model_cfg, diffusion_cfg, init = _plain(cfg.model), _plain(cfg.diffusion), None
    if cfg.get("init_from"):
        # Fine-tuning: the checkpoint decides the architecture and the noise schedule.
        init = load_checkpoint(cfg.init_from, strict=False)  # an older architecture keeps what still fits
        if init.info["fresh_parameters"] or init.info["dropped_parameters"]:
            log.warning("init_from %s: fresh %s, dropped %s", cfg.init_from, init.info["fresh_parameters"],
                        init.info["dropped_parameters"])
        model_cfg = {**init.model.cfg.to_dict(), **_plain(cfg.get("init_overrides"))}
        diffusion_cfg = {"num_steps": init.diffusion.num_steps, "schedule": init.diffusion.schedule,
                         "prediction": init.diffusion.prediction}
    module = DiffusionLitModule(
        model=model_cfg, diffusion=diffusion_cfg, loss=_plain(cfg.loss), optim=_plain(cfg.optim),
        val=_plain(cfg.val), prior=_plain(cfg.prior), seed=int(cfg.seed),
    )
    if init is not None:
        # strict=False: modules an override switches on (e.g. neighbour_feature) keep their initialization.
        missing, _ = module.model.load_state_dict(init.model.state_dict(), strict=False)
        if missing:
            log.warning("init_from %s: parameters new in this architecture: %s", cfg.init_from, missing)
        for block in module.model.blocks[init.model.cfg.n_blocks:]:  # grown deeper: new blocks start as identities
            block.silence()
        # Cumulative training record: what the starting weights had seen, carried into the export.
        module.history = {"init_from": str(cfg.init_from),
                          "tables_seen_before": int(init.info.get("tables_seen_total", init.info.get("tables_seen", 0)))}
    data = PriorDataModule(prior=_plain(cfg.prior), seed=cfg.seed, num_workers=cfg.num_workers,
                           batch_size=cfg.get("batch_size"), device=cfg.get("prior_device", "cpu"))
    logger = hydra.utils.instantiate(cfg.logger) if cfg.get("logger") else False
    trainer = L.Trainer(**_plain(cfg.trainer), logger=logger, callbacks=build_callbacks(cfg),
                        default_root_dir=str(cfg.out_dir))
    return module, data, trainer


def check_out_dir(cfg: DictConfig) -> None:
    """Refuse, or warn about, an out_dir that would lose a run: the default ``runs/${now:...}`` (outside SLURM)
    is a new directory at every launch, and under torchrun each process resolves it at its own second."""
    raw = OmegaConf.to_container(OmegaConf.masked_copy(cfg, ["out_dir"]))["out_dir"]
    if "${now:" not in str(raw) or os.environ.get("SLURM_JOB_ID"):
        return
    if cfg.get("ckpt_path") == "last":
        raise ValueError("ckpt_path=last needs a fixed out_dir: the default runs/<timestamp> is new at every "
                         "launch, so nothing would be resumed; pass out_dir=runs/NAME")
    if torch.distributed.is_available() and torch.distributed.is_torchelastic_launched():
        log.warning("torchrun: every process resolves the default out_dir runs/<timestamp> itself (a directory "
                    "per node, or per second); pass out_dir=runs/NAME")


# The checkpoint a launching process chose to resume from, for the ranks Lightning's DDP launcher starts from it:
# they run this module again, and must resume from the same file ("": none, a fresh start).
CKPT_ENV = "ICL_DIFFUSION_RESUME_FROM"


def resolve_ckpt_path(cfg: DictConfig, trainer: L.Trainer | None = None) -> str | None:
    """``ckpt_path=last``: the newest complete one of out_dir/checkpoints/last.ckpt and the SLURM requeue
    checkpoints (out_dir/hpc_ckpt_*.ckpt), or None (a fresh start) when there is none, so one command both
    starts a run and resumes it after a crash or preemption. Any other value is a path, passed through.

    One process chooses, and every rank resumes from its choice: ranks that a cluster started together
    (torchrun, srun; with ``trainer``) set up the process group the fit will use and take global rank 0's
    choice, since on a shared filesystem each node may see another state of out_dir (attribute caches, a file
    still being copied) and ranks resuming from different steps would train apart or hang; ranks Lightning's
    DDP launcher starts take the launching process's (``CKPT_ENV``, which ``train`` sets); ddp_spawn passes
    it to its processes.

    Complete: Lightning saves to a file in the system's temporary directory and moves it into place; when
    out_dir is on another filesystem (a cluster's shared one) the move is a copy, which a job killed while
    saving leaves truncated. A truncated requeue checkpoint is renamed ``*.incomplete``: given no path under
    SLURM, Lightning itself resumes from the highest ``hpc_ckpt_N``, complete or not."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path != "last":
        return ckpt_path
    if CKPT_ENV in os.environ:
        return os.environ[CKPT_ENV] or None
    environment = getattr(trainer.strategy, "cluster_environment", None) if trainer is not None else None
    if environment is not None and environment.creates_processes_externally and trainer.world_size > 1:
        trainer.strategy.setup_environment()  # what fit does first; it then finds the group made
        newest = _newest_checkpoint(Path(cfg.out_dir)) if trainer.is_global_zero else None
        return trainer.strategy.broadcast(newest)
    return _newest_checkpoint(Path(cfg.out_dir))


def _newest_checkpoint(out_dir: Path) -> str | None:
    found = [p for p in [out_dir / "checkpoints" / "last.ckpt", *out_dir.glob("hpc_ckpt_*.ckpt")] if p.exists()]
    for path in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True):
        if _complete(path):
            log.info("ckpt_path=last: resuming from %s", path)
            return str(path)
        log.warning("ckpt_path=last: skipping %s, an incomplete file (a save cut short)", path)
        if path.name.startswith("hpc_ckpt_"):  # else, with nothing to resume, Lightning under SLURM would load it
            try:
                path.rename(path.with_name(path.name + ".incomplete"))
            except FileNotFoundError:  # another launching process moved it first (nodes launched by hand)
                pass
    log.info("ckpt_path=last: no checkpoint in %s, starting fresh", out_dir)
    return None


def _complete(path: Path) -> bool:
    # torch.save writes a zip archive; a cut-short copy lacks the central directory at its end.
    try:
        with zipfile.ZipFile(path):
            return True
    except (zipfile.BadZipFile, OSError):
        return False


def train(cfg: DictConfig) -> DiffusionLitModule:
    """Pretrain (or resume, or fine-tune) as ``cfg`` says; exports an inference checkpoint if asked."""
    check_out_dir(cfg)
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)  # callbacks may write before any logger does
    module, data, trainer = build(cfg)
    ckpt_path = resolve_ckpt_path(cfg, trainer)
    launched = CKPT_ENV in os.environ
    os.environ[CKPT_ENV] = ckpt_path or ""  # the ranks Lightning's DDP launcher starts inherit it
    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    finally:
        if not launched:
            del os.environ[CKPT_ENV]
    return module


def export(module: DiffusionLitModule, path: str | os.PathLike, steps: int | None = None) -> Path:
    """Inference checkpoint (safetensors, fp16) from a trained module."""
    history = module.history
    info = {"tables_seen": module.tables_seen, "steps": int(module.global_step if steps is None else steps),
            "tables_seen_total": history.get("tables_seen_before", 0) + module.tables_seen,
            "prior": module.prior_overrides, "loss": module.loss_cfg.to_dict(), **history}
    if module.ema is not None:
        info["ema_decay"] = module.optim_cfg.ema_decay
    with module.averaged_weights() as model:  # the moving average's weights when the run keeps one
        return save_checkpoint(path, model, module.diffusion, info=info)


def export_lightning_checkpoint(ckpt: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``icl-diffusion export``: Lightning checkpoint -> inference checkpoint."""
    state = torch.load(str(ckpt), map_location="cpu", weights_only=True)
    # The module rebuilds from the config dataclasses stored as its hyperparameters (no Hydra needed).
    module = DiffusionLitModule(**state["hyper_parameters"])
    module.load_state_dict(state["state_dict"])
    module.on_load_checkpoint(state)  # tables_seen
    return export(module, path, steps=state.get("global_step", 0))


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The config Hydra would build for these overrides (for tests and notebooks)."""
    with hydra.initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra.compose(config_name="config", overrides=overrides or [])


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def _hydra_app(cfg: DictConfig) -> None:
    # Hydra's run dir is out_dir, resolved once. Lightning's DDP launcher starts the other ranks with the
    # first one's hydra.run.dir; their own out_dir (runs/${now:...}) would resolve to a later second.
    check_out_dir(cfg)  # before out_dir becomes a plain path
    with open_dict(cfg):
        cfg.out_dir = HydraConfig.get().runtime.output_dir
    train(cfg)


def hydra_main(overrides: list[str] | None = None) -> None:
    """Run the Hydra application with these overrides (None: the command line's).

    Hydra reads its arguments from ``sys.argv``, so a caller passing a list (the ``icl-diffusion`` CLI)
    gets them placed there for the call. ``__main__.__spec__`` names this module meanwhile: Lightning's
    DDP launcher starts the other ranks as ``python -m <__main__'s module> <sys.argv[1:]>``, and only this
    module understands bare overrides.
    """
    if overrides is None:
        return _hydra_app()
    main = sys.modules["__main__"]
    saved_argv, saved_spec = sys.argv, getattr(main, "__spec__", None)
    sys.argv = [sys.argv[0] if sys.argv else "icl_diffusion.train", *overrides]
    main.__spec__ = importlib.util.find_spec(__name__)
    try:
        _hydra_app()
    finally:
        sys.argv, main.__spec__ = saved_argv, saved_spec


def export_main(argv: list[str] | None = None) -> Path:
    """``icl-diffusion export LIGHTNING.ckpt -o OUT.safetensors``."""
    parser = argparse.ArgumentParser(
        prog="icl-diffusion export",
        description="Convert a Lightning training checkpoint into an inference checkpoint (safetensors, fp16).",
    )
    parser.add_argument("ckpt", help="Lightning checkpoint, e.g. runs/RUN/checkpoints/last.ckpt")
    parser.add_argument("-o", "--output", required=True,
                        help="inference checkpoint to write, e.g. checkpoints/icl_diffusion_small.safetensors")
    args = parser.parse_args(argv)
    path = export_lightning_checkpoint(args.ckpt, args.output)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    hydra_main()
