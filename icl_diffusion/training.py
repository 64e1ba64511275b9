"""The training objective shared by the Lightning module, the recipe scripts and the tests.

One network learns both sampling modes, like classifier-free guidance: a share ``p_uncond`` of the tables
is unconditional (every cell noised, no known flags, loss on every cell: what faithful RePaint calls), the
rest conditional (observed cells clean and flagged, loss on the unknown cells only). A share ``p_t_max`` of
the tables (with ``t_max_uncond`` False: of the conditional ones) is trained at t = T-1, where the x0 prediction is
the one-call point estimate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .diffusion import MASK, GaussianDiffusion
from .gaussian_feature import one_hot_facts
from .model import Denoiser
from .scaling import standardize


@dataclass
class LossConfig:
    p_uncond: float = 0.1  # share of unconditional tables (faithful RePaint needs them)
    p_t_max: float = 0.5  # share of tables at t = T-1 (the one-call point estimate)
    # Whether the unconditional tables take that share too (every recipe until session 34). At t = T-1 an
    # unconditional table knows nothing, so its target is its columns' means: False spends all of RePaint's
    # training on the levels where the joint model is learned (t uniform), at the same share of tables.
    t_max_uncond: bool = True
    cat_weight: float = 1.0  # weight of the categorical cross-entropy next to the numeric MSE
    # Share of tables trained with the closed-form estimates withheld at their unknown cells (the network's
    # linear-Gaussian input: numeric estimate and level probabilities), so that it must also learn to impute
    # from the rows it attends to and the nearest-rows input, which it otherwise underuses (issue 13).
    p_withhold_closed_form: float = 0.0
    # Keeping a teacher's categorical cells (learning without forgetting): an inference checkpoint whose level
    # probabilities the network is pulled toward, weight ``distill_weight``, on the categorical target cells of the
    # conditional tables (the cross-entropy to the teacher's probabilities, less their entropy: the KL divergence).
    # Why (session 36): continued training gains on numeric cells and loses a few tenths of a percent of
    # categorical accuracy, which neither a loss weight (stage 54) nor training the categorical head alone (stage 36)
    # bought back. Stage 56 (the shipped weights as teacher, weight 5, stage 55's fixed-compute ablation): numeric
    # cells level, classification AUC +0.0006 / +0.0003, the mixed tables' categorical cells not (-0.0007 / +0.0001).
    distill_from: str | None = None
    distill_weight: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def host_facts(batch: dict) -> dict:
    """What the training step sizes tensors by or branches on, read from a batch's own tensors: ``n_levels``
    (the most levels of a categorical column, at least 2), ``has_query`` (any prediction-mask query row),
    ``has_categorical`` (any categorical cell the data has: only then can a table have a categorical target) and
    ``one_hot`` (``gaussian_feature.one_hot_facts``: the closed-form feature's one-hot width, and whether it has
    level slots).

    Read from a batch still on the host (``PriorDataModule.on_before_batch_transfer`` adds them to it),
    they cost nothing; from a batch the prior made on the GPU, one copy of them all. ``training_loss`` reads them
    from a device batch only when they are missing."""
    query, observed = batch.get("query"), batch.get("observed")
    is_cat, n_classes = batch["is_cat"].bool(), batch["n_classes"]
    categorical = is_cat[:, None, :] if observed is None else is_cat[:, None, :] & observed.bool()
    facts = {"n_levels": n_classes.max().clamp(min=2),
             "has_query": categorical.new_zeros(()) if query is None else query.bool().any(),
             "has_categorical": categorical.any(), **one_hot_facts(is_cat, n_classes)}
    read = dict(zip(facts, torch.stack([f.long() for f in facts.values()]).tolist()))  # one read of the device
    return {"n_levels": read["n_levels"], "has_query": bool(read["has_query"]),
            "has_categorical": bool(read["has_categorical"]),
            "one_hot": {"one_hot_width": read["one_hot_width"], "has_levels": bool(read["has_levels"])}}


def training_loss(
    model: Denoiser,
    diffusion: GaussianDiffusion,
    batch: dict,
    cfg: LossConfig | None = None,
    generator: torch.Generator | None = None,
    teacher: Denoiser | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss of one prior batch (dict of ``priors.sample_batch``; an optional ``observed`` (B, N, F) marks the
    cells the data has, the only possible targets; optional ``host_facts``, all four or none).
    ``teacher``: the network ``cfg.distill_weight`` pulls the categorical cells toward (``LossConfig.distill_from``).
    Returns (loss, stats): stats are detached 0-d tensors on the batch's device (``loss``, ``num_mse``,
    ``cat_ce``, ``distill``), not Python floats, so that computing them does not wait for the device."""
    cfg = cfg or LossConfig()
    facts = batch if "n_levels" in batch else host_facts(batch)
    x, known, is_cat, n_classes = batch["x"], batch["known"].bool(), batch["is_cat"].bool(), batch["n_classes"]
    B, _, Fe = x.shape
    dev = x.device

    def rand(*shape):
        return torch.rand(shape, generator=generator, device=dev)

    x0, _, _ = standardize(x, known, is_cat)
    observed = batch.get("observed")
    if observed is not None:  # a cell the data never had: its value is unknown, so it enters as the mean
        observed = observed.bool()
        x0 = torch.where(observed, x0, torch.zeros_like(x0))
    uncond = rand(B) < cfg.p_uncond
    known_in = known & ~uncond[:, None, None]
    # Cells the data never had (a user table's own missing cells, in fine-tuning) are never targets.
    target_cells = ~known_in if observed is None else ~known_in & observed
    t = (rand(B) * diffusion.num_steps).long().clamp(max=diffusion.num_steps - 1)
    at_t_max = rand(B) < cfg.p_t_max
    if not cfg.t_max_uncond:
        at_t_max = at_t_max & ~uncond
    t = torch.where(at_t_max, torch.full_like(t, diffusion.num_steps - 1), t)

    noise = torch.randn(x0.shape, generator=generator, device=dev)
    cat = is_cat[:, None, :].expand_as(x0)
    x_t = torch.where(cat, diffusion.q_sample_categorical(x0, t, generator), diffusion.q_sample(x0, t, noise))
    x_t = torch.where(known_in, x0, x_t)
    if observed is not None:  # ... and a categorical one stays absorbed (no level is ever revealed)
        x_t = torch.where(cat & ~observed, torch.full_like(x_t, MASK), x_t)

    # Prediction tables: query rows are never attended to, exactly as the classifier/regressor runs them.
    query = batch.get("query")
    key_mask = None
    if facts["has_query"]:
        key_mask = ~(query.bool() & ~uncond[:, None])
    col_embed = None
    if model.cfg.col_embed_dim:  # fresh identities per table: the network may not memorize any
        col_embed = torch.randn(B, Fe, model.cfg.col_embed_dim, generator=generator, device=dev)
    n_levels = facts["n_levels"]  # fresh level identities per table and column, likewise
    level_embed = torch.randn(B, Fe, n_levels, model.cfg.level_embed_dim, generator=generator, device=dev)
    withhold = rand(B) < cfg.p_withhold_closed_form if cfg.p_withhold_closed_form > 0 else None
    inputs = (x_t, t, known_in, is_cat, n_classes)  # the network's, and the teacher's
    options = {"key_mask": key_mask, "col_embed": col_embed, "level_embed": level_embed, "n_levels": n_levels,
               "withhold_closed_form": withhold, "one_hot": facts["one_hot"]}
    out, logits = model(*inputs, **options)

    num_cells = target_cells & ~cat
    target = diffusion.target(x0, noise, t)
    se = (out - target) ** 2
    num_loss = (se * num_cells).sum() / num_cells.sum().clamp(min=1)
    cat_cells = target_cells & cat & (x_t == MASK)
    # Without a categorical cell the categorical head must get no gradient at all (None, not 0: AdamW would still
    # decay and move those weights): a host fact. With one, which cells are targets is drawn on the device; a
    # step whose draws absorbed none gives the head a zero gradient (its loss term is 0, as before): counting
    # them on the host would make it wait for the device at every step.
    if facts["has_categorical"]:
        # The mean over the target cells of every cell's cross-entropy: boolean indexing (logits[cat_cells])
        # would wait for the device to count the cells.
        codes = torch.where(cat_cells, x0, torch.zeros_like(x0)).long().clamp(min=0)
        ce = F.cross_entropy(logits.flatten(0, 2), codes.flatten(), reduction="none").view_as(x0)
        ce = (ce * cat_cells).sum() / cat_cells.sum().clamp(min=1)
    else:
        ce = out.new_zeros(())
    distill = out.new_zeros(())
    if teacher is not None and cfg.distill_weight and facts["has_categorical"]:
        with torch.no_grad():
            _, taught = teacher(*inputs, **options)
            p_teacher = torch.softmax(taught, -1)
            entropy = -(p_teacher * torch.log_softmax(taught, -1)).sum(-1)  # a level it rules out adds 0 (-1e4 * 0)
        kl = -(p_teacher * torch.log_softmax(logits, -1)).sum(-1) - entropy  # (B, N, F)
        taught_cells = cat_cells & ~uncond[:, None, None]
        distill = (kl * taught_cells).sum() / taught_cells.sum().clamp(min=1)
    loss = num_loss + cfg.cat_weight * ce + cfg.distill_weight * distill
    return loss, {"loss": loss.detach(), "num_mse": num_loss.detach(), "cat_ce": ce.detach(),
                  "distill": distill.detach()}
