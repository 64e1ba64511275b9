"""Fine-tuning on the user's own tables: the pretraining Lightning module and loss, fed with subsets of the
user's tables (and a share of synthetic prior batches, so the model keeps what it knew).

Training batches: a random table, a random subset of its (training) rows and columns, encoded exactly as at
inference (``TablePreprocessor``), and a mask drawn as the prior draws it (MCAR / MAR / MNAR / whole column /
block / prediction) but placed only on cells the table has: a cell missing in the data is never a target.
Validation: held-out rows (one table) or held-out tables (several), 20% of their observed cells hidden (MCAR,
fixed), imputed by the inference engine as users impute (``evaluation.evaluate_engine``) and scored: NRMSE of
numeric cells plus the error rate of categorical cells. The best validation weights are written out as an
ordinary inference checkpoint: weights whose gain over the starting ones is within the validation cells' noise
(``min_gain_se``), or that lose generic skill (``max_forgetting``), do not count.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from priors import PriorConfig
from priors._random import Rng
from priors.batch import sample_batch
from priors.config import MASK_KINDS
from priors.dataset import fixed_batches, stream_generator
from priors.masks import sample_mask

from .checkpoint import Pretrained, load_pretrained, save_checkpoint
from .evaluation import evaluate_engine
from .inference import beats_noise
from .lit import DiffusionLitModule, HostFactsDataModule
from .preprocessing import EncodedTable, TablePreprocessor, as_table
from .sampling import SamplerConfig, context_rows
from .scaling import standardize
from .training import LossConfig
from .transforms import YeoJohnson, check_members

USER_STREAM = 2  # domain tag of the user-table batches, apart from the prior's streams (0, 1) and steps' (3)


@dataclass
class FineTuneConfig:
    max_steps: int = 400  # ~1-2 CPU-minutes for the small model on small tables
    lr: float = 5e-4  # half of pretraining's peak: adapt within a few hundred steps
    warmup_steps: int = 20
    batch_size: int = 8  # subsets per batch (all of one table, same rows x columns)
    rows: tuple[int, int] = (32, 256)  # rows per subset, log-uniform, at most the table's
    max_features: int = 20  # columns per subset at most (the pretraining range)
    min_features: int = 2  # columns per subset at least (at most the table's): the table's all = as inference
    p_prior: float = 0.2  # share of batches from the synthetic prior (keeps what pretraining taught)
    val_frac: float = 0.2  # held-out rows (one table) or tables (several)
    val_every: int = 50
    patience: int = 4  # validations without improvement before stopping early
    # Names (prefixes) of the only parameters trained; empty = all (as pretraining's ``optim.train_only``).
    train_only: tuple[str, ...] = ()
    # Train with the column (and level) identity vectors inference gives the table's columns
    # (``Denoiser.column_embeddings`` / ``level_embeddings`` of the whole table, picked by each subset's column
    # indices) instead of fresh random ones, so the model may learn what each column is and how it relates to
    # the others. One table, or several of one schema (``shared_schema``: the same columns in the same order,
    # as a hospital's lab-panel tables); tables of different schemas: ignored. The fine-tuned checkpoint is then
    # specific to tables of that schema (inference gives identities by column position).
    table_identities: bool = False
    mask_kinds: tuple[str, ...] = MASK_KINDS  # masks of the user-table batches, drawn uniformly among these
    # The views of the table (``transforms.MEMBERS``) the user-table batches are drawn in, one per batch,
    # uniformly: as inference's test-time ensemble sees the table (a Yeo-Johnson view is fitted on each
    # subset's known cells, standardized, as ``inference.views`` fits it on the key rows). None: the
    # checkpoint's ``SamplerConfig.ensemble``. A view left untrained drifts: on AER/Guns, 75 steps on the
    # table as it is took the ensemble's NRMSE from 0.27 to 0.31 (benchmarks/results/finetune.md, session 8).
    views: tuple[str, ...] | None = None
    # Loss (``LossConfig``; defaults: pretraining's): share of tables at t = T-1 (the one-call point estimate
    # inference uses), share of unconditional tables, weight of the categorical cross-entropy.
    p_t_max: float = LossConfig.p_t_max
    p_uncond: float = LossConfig.p_uncond
    cat_weight: float = LossConfig.cat_weight
    # User-table batches at t = T-1 enter as inference's one-call point estimate enters a table: unknown numeric
    # cells at 0 (x_T's mean), not a noise draw (pretraining's input, which the one call only approximates).
    point_inputs: bool = False
    # L2-SP (Li et al., ICML 2018): the training loss plus ``anchor`` x the squared distance of the trained
    # weights from the starting checkpoint's (summed over every trained parameter). It trades learning for
    # keeping: on AER/Guns, 75 steps with 1.0 lost 0.04 of the Gaussian-oracle ratio instead of 0.07-0.12, but
    # 0.1 already stops the test domain's c = a * b from being learned (benchmarks/results/finetune.md). 0 = off.
    anchor: float = 0.0
    # Forgetting guard: weights whose ratio to the exact conditional mean on fixed synthetic Gaussian tables
    # (``guard_batches``, through the inference engine) is worse than the starting weights' by more than this
    # are never kept, however well they fit the user's tables. None: no guard.
    max_forgetting: float | None = 0.02
    # Noise gate: weights that beat the best validation score are kept only where their gain over the starting
    # weights, summed over the validation cells (``evaluation.cell_losses``: numeric cells' squared error in
    # their column's std, categorical cells' 0/1 error), exceeds this many paired standard errors of that sum
    # (``inference.beats_noise``). Session 32, AER/NMES1988 (benchmarks/results/finetune.md): with no gate a
    # validation 0.8% better than the start let through weights worse on the held-out rows (accuracy / NRMSE 0.758
    # / 0.890 -> 0.753 / 0.894); at 1 standard error the same step passed (one of eight validations: the best of
    # several noisy looks); at 2 none did and the start was kept. 0: off.
    min_gain_se: float = 2.0
    seed: int = 0


def shared_schema(tables, max_classes: int) -> bool:
    """Whether the tables (one, or a list) share one schema: the same column names in the same order, each of one
    kind in every table, categorical ones with the same levels (so that a column's identity vectors, given by
    position at inference, mean one thing in all of them)."""
    tables = tables if isinstance(tables, (list, tuple)) else [tables]
    schemas = {tuple((c.name, c.kind, tuple(c.categories or ())) for c in
                     TablePreprocessor(max_classes).fit(as_table(table)).columns_) for table in tables}
    return len(schemas) == 1


def encode_tables(tables, max_classes: int) -> list[EncodedTable]:
    """Each table encoded by its own preprocessor; clear errors (naming table and column) before training."""
    if not isinstance(tables, (list, tuple)):
        tables = [tables]
    if not tables:
        raise ValueError("fine_tune needs at least one table")
    encoded = []
    for i, table in enumerate(tables):
        name = f"table {i}" if len(tables) > 1 else "the table"
        table = as_table(table)
        if table.shape[0] < 8:
            raise ValueError(f"{name} has {table.shape[0]} rows; fine-tuning needs at least 8")
        if table.shape[1] < 2:
            raise ValueError(f"{name} has {table.shape[1]} column; fine-tuning needs at least 2")
        try:
            enc = TablePreprocessor(max_classes).fit(table).transform(table)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        encoded.append(enc)
    return encoded


def split(encoded: list[EncodedTable], val_frac: float, seed: int) -> tuple[list[EncodedTable], list[EncodedTable]]:
    """(training tables, validation tables): whole tables when there are several, else rows of the one."""
    rng = np.random.default_rng(seed)
    if len(encoded) > 1:
        order = rng.permutation(len(encoded))
        n_val = max(1, round(val_frac * len(encoded)))
        return [encoded[i] for i in order[n_val:]], [encoded[i] for i in order[:n_val]]
    enc = encoded[0]
    rows = rng.permutation(len(enc.x))
    n_val = max(4, round(val_frac * len(rows)))
    take = lambda r: EncodedTable(enc.x[r], enc.known[r], enc.is_cat, enc.n_classes)
    return [take(np.sort(rows[n_val:]))], [take(np.sort(rows[:n_val]))]


def _as_batch(x, observed, is_cat, n_classes) -> dict:
    """Tensors (B, N, F) etc. of one table's subsets, in the prior's batch format (plus ``observed``)."""
    return {"x": torch.as_tensor(x), "observed": torch.as_tensor(observed), "is_cat": torch.as_tensor(is_cat),
            "n_classes": torch.as_tensor(n_classes)}


def validation_batches(tables: list[EncodedTable], seed: int, rate: float = 0.2,
                       context: EncodedTable | None = None, max_context_rows: int = 512) -> list[dict]:
    """One batch per validation table: rate of its observed cells hidden (MCAR, seeded).

    ``context`` (one table: its training rows): the batch is the training table's complete rows (all of its
    rows if none is complete; a seeded subset of at most ``max_context_rows``, the caller's ``sampling.context_rows``)
    above the validation rows, none of their cells hidden, as ``DiffusionImputer.transform`` imputes new rows of the
    table it was fitted on.
    """
    out = []
    for i, enc in enumerate(tables):
        rng = np.random.default_rng([seed, i])
        hide = enc.known & (rng.random(enc.known.shape) < rate)
        x, known, observed = enc.x, enc.known & ~hide, enc.known
        if context is not None:
            rows = context.known.all(1)
            rows = np.flatnonzero(rows if rows.any() else np.ones_like(rows))
            if len(rows) > max_context_rows:
                rows = np.sort(rng.choice(rows, max_context_rows, replace=False))
            x = np.concatenate([context.x[rows], x])
            known = np.concatenate([context.known[rows], known])
            observed = np.concatenate([context.known[rows], observed])
        b = _as_batch(x[None], observed[None], enc.is_cat[None], enc.n_classes[None])
        b["known"] = torch.as_tensor(known)[None]
        b["family"] = "user"
        out.append(b)
    return out


def yeo_johnson_view(x: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor) -> torch.Tensor:
    """Subsets (B, N, F) as the ensemble's Yeo-Johnson member sees them: each standardized on its known cells,
    then Gaussianized by a transform fitted on them (``inference.views``); categorical columns as they are."""
    x_std = standardize(x, known, is_cat)[0]
    return torch.stack([YeoJohnson.fit(x_std[b], known[b], is_cat[b]).forward(x_std[b]) for b in range(len(x))])


GUARD_SEED = 4242  # the forgetting guard's tables: drawn once, from a stream no training batch uses


def guard_batches() -> list[dict]:
    """The forgetting guard's tables: 4 linear-Gaussian tables of 256 rows x 8 columns, 30% of cells hidden
    at random (MCAR), as the Gaussian-oracle benchmark hides them."""
    return fixed_batches(PriorConfig(missing_rate=(0.3, 0.3)), GUARD_SEED, 1, batch_size=4, n_rows=256,
                         n_features=8, family="gaussian", mask_kind="mcar")


class UserTableDataset(IterableDataset):
    """Infinite stream of training batches; batch ``index`` depends only on (seed, index): resumable."""

    def __init__(self, tables: list[EncodedTable], cfg: FineTuneConfig, prior: PriorConfig, start_index: int = 0):
        super().__init__()
        self.tables, self.cfg, self.prior = tables, cfg, prior
        self.views = check_members(cfg.views if cfg.views is not None else ("identity",), "views")
        self.next_index = start_index

    def batch(self, index: int) -> dict:
        g = stream_generator(self.cfg.seed, USER_STREAM, index)
        if torch.rand((), generator=g) < self.cfg.p_prior:
            out = sample_batch(self.prior, g)
            out["observed"] = torch.ones_like(out["known"])
            return out
        enc = self.tables[int(torch.randint(len(self.tables), (), generator=g))]
        N, F = enc.x.shape
        lo, hi = self.cfg.rows
        n = min(N, int(math.exp(math.log(lo) + torch.rand((), generator=g).item() * (math.log(hi) - math.log(lo)))))
        f_hi = min(F, self.cfg.max_features)
        f = int(torch.randint(min(max(2, self.cfg.min_features), f_hi), f_hi + 1, (), generator=g))
        B = self.cfg.batch_size
        rows = torch.stack([torch.randperm(N, generator=g)[:n] for _ in range(B)]).numpy()  # (B, n)
        cols = torch.stack([torch.randperm(F, generator=g)[:f] for _ in range(B)]).numpy()  # (B, f)
        x = enc.x[rows[:, :, None], cols[:, None, :]]
        observed = enc.known[rows[:, :, None], cols[:, None, :]]
        b = _as_batch(x, observed, enc.is_cat[cols], enc.n_classes[cols])
        b["target"] = torch.randint(f, (B,), generator=g)
        b["columns"] = torch.as_tensor(cols)  # (B, f): which columns of the table (FineTuneLitModule)
        kinds = self.cfg.mask_kinds
        kind = kinds[int(torch.randint(len(kinds), (), generator=g))]
        if f < 2 and kind == "mar":
            kind = "mcar"
        known, query = sample_mask(self.prior, Rng(g, "cpu"), kind, b["x"], b["is_cat"], b["target"])
        b["known"], b["query"] = known & b["observed"], query
        views = self.views
        if views[int(torch.randint(len(views), (), generator=g))] == "yeo_johnson":
            b["x"] = yeo_johnson_view(b["x"], b["known"], b["is_cat"])
        b["index"] = index
        return b

    def __iter__(self):
        while True:
            index = self.next_index
            self.next_index += 1
            yield self.batch(index)


class UserDataModule(HostFactsDataModule):
    def __init__(self, tables, cfg: FineTuneConfig, prior: PriorConfig) -> None:
        super().__init__()
        self.tables, self.cfg, self.prior = tables, cfg, prior
        self.start_index = 0

    def train_dataloader(self) -> DataLoader:
        return DataLoader(UserTableDataset(self.tables, self.cfg, self.prior, self.start_index), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader([0], batch_size=None)  # the validation tables live in the module

    def state_dict(self) -> dict:
        return {"start_index": self.trainer.global_step if self.trainer is not None else self.start_index}

    def load_state_dict(self, state: dict) -> None:
        self.start_index = int(state.get("start_index", 0))


class FineTuneLitModule(DiffusionLitModule):
    """The pretraining module, two options for the user-table batches (those that name their ``columns``):
    ``n_features`` > 0: train with the identity vectors inference gives those columns of the whole table
    (``n_features`` columns, ``n_levels`` levels at most; ``FineTuneConfig.table_identities``);
    ``point_inputs``: a table at t = T-1 enters as inference's one call enters it, unknown numeric cells at 0
    rather than a noise draw (``FineTuneConfig.point_inputs``). Both reach the model through a forward
    pre-hook, during those training steps only."""

    def __init__(self, *args, n_features: int = 0, n_levels: int = 2, point_inputs: bool = False,
                 anchor: float = 0.0, sampler: SamplerConfig | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.anchor, self._start = anchor, None
        self.sampler = sampler or SamplerConfig()  # the inference settings validation imputes with
        self._table_ids = None
        if n_features:
            self._table_ids = (self.model.column_embeddings(n_features),
                               self.model.level_embeddings(n_features, n_levels))
        self._point_inputs, self._columns = point_inputs, None
        if self._table_ids is not None or point_inputs:
            self.model.register_forward_pre_hook(self._user_batch_inputs, with_kwargs=True)

    def _user_batch_inputs(self, module, args, kwargs):
        if self._columns is None:
            return None
        if self._table_ids is not None:
            cols = self._columns.cpu()
            kwargs = {**kwargs, **{k: ids[cols].to(args[0].device)
                                   for k, ids in zip(("col_embed", "level_embed"), self._table_ids)}}
        if self._point_inputs:
            x_t, t, known, is_cat = args[:4]
            at_mean = (t == self.diffusion.num_steps - 1)[:, None, None] & ~known & ~is_cat[:, None, :]
            args = (torch.where(at_mean, torch.zeros_like(x_t), x_t), *args[1:])
        return args, kwargs

    def on_validation_epoch_end(self) -> None:
        """The validation tables imputed as users impute them: the inference engine, the checkpoint's settings."""
        for k, value in self.validate().items():
            self.log(f"val/{k}", value)

    def validate(self) -> dict[str, float]:
        """The validation metrics; the validation cells' losses (``evaluation.cell_losses``) in ``cell_losses``."""
        losses = []
        metrics = evaluate_engine(Pretrained(self.model, self.diffusion, sampler=self.sampler), self._val_batches,
                                  losses=losses)
        self.cell_losses = torch.cat(losses) if losses else torch.zeros(0, dtype=torch.float64)
        return metrics

    def set_start(self) -> None:
        """Record the current weights as those ``anchor`` pulls towards (call after loading the checkpoint)."""
        self._start = {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self._columns = batch.get("columns")
        try:
            loss = super().training_step(batch, batch_idx)
        finally:
            self._columns = None
        if self.anchor > 0:
            if self._start is None:
                raise RuntimeError("FineTuneLitModule.set_start() was not called; anchor needs the start weights")
            drift = sum(((p - self._start[n].to(p.device)) ** 2).sum()
                        for n, p in self.model.named_parameters() if p.requires_grad and n in self._start)
            self.log("train/drift", drift.detach())
            loss = loss + self.anchor * drift
        return loss


def score(metrics: dict) -> float:
    """Validation score, lower is better: NRMSE of numeric cells + error rate of categorical cells."""
    nrmse, acc = metrics.get("user_nrmse", math.nan), metrics.get("user_cat_acc", math.nan)
    return (0.0 if math.isnan(nrmse) else nrmse) + (0.0 if math.isnan(acc) else 1 - acc)


class KeepBest(L.Callback):
    """Tracks the validation score, keeps the best weights, stops after ``patience`` validations without
    improvement. With ``max_forgetting``, weights whose ``gaussian_ratio`` is worse than ``ratio_before`` by more
    than that are not eligible (the forgetting guard). With ``start_losses`` (the starting weights' validation
    ``cell_losses``) and ``min_gain_se`` > 0, nor are weights whose gain over the start on those cells (the
    module's ``cell_losses``) is within ``min_gain_se`` paired standard errors (the noise gate)."""

    def __init__(self, before: float, patience: int, start_state: dict, ratio_before: float | None = None,
                 max_forgetting: float | None = None, start_losses: torch.Tensor | None = None,
                 min_gain_se: float = 0.0) -> None:
        # The starting weights are the best so far: a run that never improves writes them back unchanged.
        self.best, self.best_state, self.best_step = before, start_state, 0
        self.patience, self.bad = patience, 0
        self.ratio_before, self.max_forgetting = ratio_before, max_forgetting
        self.start_losses, self.min_gain_se = start_losses, min_gain_se
        self.history: list[tuple[int, float]] = [(0, before)]
        self.rejected = 0  # validations that beat the best score but failed the guard
        self.within_noise = 0  # validations that beat the best score but not the start by more than noise

    def _beats_noise(self, pl_module) -> bool:
        if self.start_losses is None or self.min_gain_se <= 0:
            return True
        return beats_noise(self.start_losses - pl_module.cell_losses, self.min_gain_se)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k[4:]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        s = score(metrics)
        self.history.append((trainer.global_step, s))
        kept = self.max_forgetting is None or self.ratio_before is None or (
            metrics.get("gaussian_ratio", math.inf) <= self.ratio_before + self.max_forgetting)
        significant = s < self.best and kept and self._beats_noise(pl_module)
        if significant:
            self.best, self.best_step, self.bad = s, trainer.global_step, 0
            self.best_state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}
        else:
            self.rejected += s < self.best and not kept
            self.within_noise += s < self.best and kept
            self.bad += 1
            if self.bad >= self.patience:
                trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "bad": self.bad, "history": self.history,
                "best_state": self.best_state, "rejected": self.rejected, "within_noise": self.within_noise}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_step, self.bad = state["best"], state["best_step"], state["bad"]
        self.best_state = state["best_state"]
        self.history = [tuple(h) for h in state["history"]]
        self.rejected = state.get("rejected", 0)
        self.within_noise = state.get("within_noise", 0)


def fine_tune(tables, *, checkpoint: str | os.PathLike | Pretrained | None = None, out: str | os.PathLike,
              config: FineTuneConfig | None = None, progress: bool | None = None, resume: bool = False,
              **overrides) -> Path:
    """Fine-tune a checkpoint on ``tables`` (one DataFrame / array, or a list of them; mixed types, with their
    own missing cells) and write the best validation weights to ``out`` (an ordinary inference checkpoint).

    ``config`` / keyword overrides: ``FineTuneConfig`` fields (max_steps, lr, p_prior, val_frac, ...).
    ``resume``: continue an interrupted run from ``<out>.run/checkpoints/last.ckpt``. Prints the validation
    score before and after. Returns ``out``.
    """
    cfg = FineTuneConfig(**{**asdict(config or FineTuneConfig()), **overrides})
    start = checkpoint if isinstance(checkpoint, Pretrained) else load_pretrained(checkpoint)
    cfg = replace(cfg, views=check_members(start.sampler.ensemble if cfg.views is None else cfg.views, "views"))
    if cfg.max_forgetting is not None and not cfg.max_forgetting >= 0:  # a negative one refuses every step
        raise ValueError(f"max_forgetting must be a number >= 0 (or None: no guard), got {cfg.max_forgetting!r}")
    if isinstance(cfg.min_gain_se, bool) or not isinstance(cfg.min_gain_se, (int, float)) or not cfg.min_gain_se >= 0:
        raise ValueError(f"min_gain_se must be a number >= 0 (0: no noise gate), got {cfg.min_gain_se!r}")
    encoded = encode_tables(tables, start.model.cfg.max_classes)
    train_tables, val_tables = split(encoded, cfg.val_frac, cfg.seed)
    out = Path(out)
    run_dir = out.parent / f"{out.name}.run"
    prior = PriorConfig(n_rows=cfg.rows, n_features=(2, cfg.max_features), max_cells=8192,
                        max_batch_size=cfg.batch_size)
    identities = cfg.table_identities and shared_schema(tables, start.model.cfg.max_classes)
    module = FineTuneLitModule(
        n_features=encoded[0].x.shape[1] if identities else 0,
        n_levels=max(2, *(int(e.n_classes.max()) for e in encoded)) if identities else 2, point_inputs=cfg.point_inputs,
        anchor=cfg.anchor, sampler=start.sampler,
        model=start.model.cfg, diffusion={"num_steps": start.diffusion.num_steps, "schedule": start.diffusion.schedule,
                                          "prediction": start.diffusion.prediction},
        loss={"p_t_max": cfg.p_t_max, "p_uncond": cfg.p_uncond, "cat_weight": cfg.cat_weight},
        optim={"lr": cfg.lr, "warmup_steps": cfg.warmup_steps, "max_steps": cfg.max_steps,
               "train_only": tuple(cfg.train_only)}, seed=cfg.seed)
    module.model.load_state_dict(start.model.state_dict())
    module.set_start()
    # One table: its validation rows imputed with its training rows as context, as new rows would be.
    if len(encoded) == 1:
        context = train_tables[0]
        most = context_rows(start.sampler.max_context_rows, start.sampler.context_cells, context.x.shape[1])
        module._val_batches = validation_batches(val_tables, cfg.seed, context=context, max_context_rows=most)
    else:  # whole tables: each validation table is imputed as a whole, no context rows
        module._val_batches = validation_batches(val_tables, cfg.seed)
    if cfg.max_forgetting is not None:
        module._val_batches += guard_batches()
    start_metrics = module.validate()
    before = score(start_metrics)
    keep = KeepBest(before, cfg.patience, {k: v.detach().clone() for k, v in module.model.state_dict().items()},
                    start_metrics.get("gaussian_ratio"), cfg.max_forgetting, module.cell_losses, cfg.min_gain_se)
    interactive = progress if progress is not None else sys.stderr.isatty()
    trainer = L.Trainer(
        accelerator="auto", devices=1, max_steps=cfg.max_steps, val_check_interval=cfg.val_every,
        check_val_every_n_epoch=None, limit_val_batches=1, num_sanity_val_steps=0, gradient_clip_val=1.0,
        logger=False, enable_progress_bar=interactive, enable_model_summary=False, default_root_dir=str(run_dir),
        callbacks=[keep, L.pytorch.callbacks.ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True,
                                                             save_top_k=0, every_n_train_steps=cfg.val_every)],
    )
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    trainer.fit(module, datamodule=UserDataModule(train_tables, cfg, prior),
                ckpt_path=str(ckpt) if resume and ckpt.exists() else None)
    module.model.load_state_dict(keep.best_state)
    info = {
        **{k: v for k, v in start.info.items() if k not in ("fresh_parameters", "dropped_parameters")},
        "fine_tuned": {"source": str(checkpoint or "shipped"), "tables": [list(e.x.shape) for e in encoded],
                       "steps": int(trainer.global_step), "best_step": keep.best_step, "val_before": before,
                       "val_after": keep.best, "guard_rejected": keep.rejected, "within_noise": keep.within_noise,
                       "config": asdict(cfg)},
    }
    save_checkpoint(out, module.model, module.diffusion, info=info, sampler=start.sampler)  # tuned settings kept
    kept = (f"best at step {keep.best_step}" if keep.best_step else
            "no step beat the starting weights, which were written unchanged")
    if keep.rejected:
        kept += (f"; {keep.rejected} better-scoring validation(s) refused by the forgetting guard "
                 f"(max_forgetting={cfg.max_forgetting})")
    if keep.within_noise:
        kept += (f"; {keep.within_noise} better-scoring validation(s) within {cfg.min_gain_se:g} standard errors of "
                 f"the start (min_gain_se)")
    print(f"fine-tuned {trainer.global_step} steps: validation score {before:.4f} -> {keep.best:.4f} "
          f"(NRMSE + categorical error rate; {kept}); wrote {out}")
    return out
