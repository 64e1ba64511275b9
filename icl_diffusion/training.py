"""The training objective shared by the Lightning module, the recipe scripts and the tests.

One network learns both sampling modes, like classifier-free guidance: a share ``p_uncond`` of the tables
is unconditional (every cell noised, no known flags, loss on every cell: what faithful RePaint calls), the
rest conditional (observed cells clean and flagged, loss on the unknown cells only). A share ``p_t_max`` of
the tables is trained at t = T-1, where the x0 prediction is the one-call point estimate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .diffusion import MASK, GaussianDiffusion
from .model import Denoiser
from .scaling import standardize


@dataclass
class LossConfig:
    p_uncond: float = 0.1  # share of unconditional tables (faithful RePaint needs them)
    p_t_max: float = 0.5  # share of tables at t = T-1 (the one-call point estimate)
    cat_weight: float = 1.0  # weight of the categorical cross-entropy next to the numeric MSE

    def to_dict(self) -> dict:
        return asdict(self)


def training_loss(
    model: Denoiser,
    diffusion: GaussianDiffusion,
    batch: dict,
    cfg: LossConfig | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one prior batch (dict of ``priors.sample_batch``; an optional ``observed`` (B, N, F) marks the
    cells the data has, the only possible targets). Returns (loss, scalar stats)."""
    cfg = cfg or LossConfig()
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
    t = torch.where(rand(B) < cfg.p_t_max, torch.full_like(t, diffusion.num_steps - 1), t)

    noise = torch.randn(x0.shape, generator=generator, device=dev)
    cat = is_cat[:, None, :].expand_as(x0)
    x_t = torch.where(cat, diffusion.q_sample_categorical(x0, t, generator), diffusion.q_sample(x0, t, noise))
    x_t = torch.where(known_in, x0, x_t)
    if observed is not None:  # ... and a categorical one stays absorbed (no level is ever revealed)
        x_t = torch.where(cat & ~observed, torch.full_like(x_t, MASK), x_t)

    # Prediction tables: query rows are never attended to, exactly as the classifier/regressor runs them.
    query = batch.get("query")
    key_mask = None
    if query is not None and bool(query.any()):
        key_mask = ~(query.bool() & ~uncond[:, None])
    col_embed = None
    if model.cfg.col_embed_dim:  # fresh identities per table: the network may not memorize any
        col_embed = torch.randn(B, Fe, model.cfg.col_embed_dim, generator=generator, device=dev)
    n_levels = max(2, int(n_classes.max()))  # fresh level identities per table and column, likewise
    level_embed = torch.randn(B, Fe, n_levels, model.cfg.level_embed_dim, generator=generator, device=dev)
    out, logits = model(x_t, t, known_in, is_cat, n_classes, key_mask=key_mask, col_embed=col_embed,
                        level_embed=level_embed)

    num_cells = target_cells & ~cat
    target = diffusion.target(x0, noise, t)
    se = (out - target) ** 2
    num_loss = (se * num_cells).sum() / num_cells.sum().clamp(min=1)
    cat_cells = target_cells & cat & (x_t == -1.0)
    if cat_cells.any():
        ce = F.cross_entropy(logits[cat_cells], x0[cat_cells].long().clamp(min=0))
    else:
        ce = out.new_zeros(())
    loss = num_loss + cfg.cat_weight * ce
    stats = {"loss": loss.item(), "num_mse": num_loss.item(), "cat_ce": ce.item()}
    return loss, stats
