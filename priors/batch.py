"""One training batch: B synthetic tables of the same size, with masks of known cells.

Size bucketing instead of padding: all tables of a batch share rows N and features F, and the batch
size shrinks as N * F grows (B = max_cells // (N * F)), so each batch costs about the same compute
whatever the table size, and no cell of a batch is padding. With ``fill_budget``, a batch that rounding
leaves short of the budget takes one more table of fewer rows (``filled_rows``).
"""

from __future__ import annotations

import math

import torch

from ._random import Rng
from .columns import make_columns
from .config import FAMILIES, MASK_KINDS, PriorConfig
from .gaussian import sample_gaussian_tables
from .masks import sample_mask
from .scm import sample_scm_nodes


def default_batch_size(cfg: PriorConfig, n_rows: int, n_features: int) -> int:
    """max(1, max_cells // (N * F)), at most ``cfg.max_batch_size``."""
    return max(1, min(cfg.max_batch_size, cfg.max_cells // (n_rows * n_features)))


def filled_rows(cfg: PriorConfig, n_rows: int, n_features: int) -> int:
    """The row count near ``n_rows`` at which a batch of ``n_features``-column tables fills the cell budget.

    B = max_cells // (N * F) leaves up to half of the budget unused (one table of 0.6 * max_cells cells is a
    batch at 60%). Such a batch takes one more table instead, its rows cut so that B + 1 tables fit (by at
    most a third when B >= 2): tables keep their drawn size or shrink a little, and a device that the
    smaller batch left idle trains on more tables in the same time (a CPU does not: PriorConfig.fill_budget
    says why it is off by default). A batch of one table
    (the largest tables, which should stay in the mix) moves to the nearer, in log, of one table filling the
    budget and two of half of it (rows x at most 1.41 or / at most 1.41). Rows stay within ``cfg.n_rows``. A
    batch capped at ``max_batch_size`` tables, or one table over the budget, keeps its rows.
    """
    per_table = cfg.max_cells / (n_rows * n_features)  # tables the budget holds
    if per_table < 1 or per_table >= cfg.max_batch_size:
        return n_rows
    lo, hi = cfg.n_rows
    fits = int(per_table)
    one_more = min(hi, max(lo, cfg.max_cells // ((fits + 1) * n_features)))
    if fits >= 2:
        return one_more
    alone = min(hi, max(lo, cfg.max_cells // n_features))
    return min((alone, one_more), key=lambda n: abs(math.log(n / n_rows)))


def table_shape(
    cfg: PriorConfig,
    rng: Rng,
    *,
    batch_size: int | None = None,
    n_rows: int | None = None,
    n_features: int | None = None,
) -> tuple[int, int, int]:
    """(B, N, F) of a batch: what is not given is drawn on ``rng``'s host generator (N and F log-uniform,
    drawn rows cut to ``cfg.wide_table_cells`` and moved by ``filled_rows`` unless B is given or
    ``cfg.fill_budget`` is off) and B = ``default_batch_size``."""
    N = n_rows if n_rows is not None else rng.int_log_uniform(*cfg.n_rows)
    F = n_features if n_features is not None else rng.int_log_uniform(*cfg.n_features)
    if n_rows is None and cfg.wide_table_cells:
        N = min(N, max(cfg.n_rows[1] // 2, cfg.wide_table_cells // F))
    if n_rows is None and batch_size is None and cfg.fill_budget:
        N = filled_rows(cfg, N, F)
    return (batch_size if batch_size is not None else default_batch_size(cfg, N, F)), N, F


def sample_batch(
    cfg: PriorConfig,
    generator: torch.Generator,
    *,
    batch_size: int | None = None,
    n_rows: int | None = None,
    n_features: int | None = None,
    family: str | None = None,
    mask_kind: str | None = None,
    device: torch.device | str = "cpu",
) -> dict:
    """Sample a batch of B complete tables and which of their cells are known.

    Anything not given is drawn from ``cfg`` (sizes by ``table_shape``, family and mask kind by weight).
    ``mask_kind`` may be one of MASK_KINDS or "mixed" (each table draws its own kind). The same
    generator state always gives the same batch; tensors are generated on ``device``.

    Returns a dict:
      x         float32 (B, N, F)  complete tables; categorical cells hold codes 0..K-1 as floats
      known     bool    (B, N, F)  observed cells (>= 2 per column, >= 1 unknown cell per table)
      query     bool    (B, N)     rows whose target cell is hidden by a prediction mask
      is_cat    bool    (B, F)
      n_classes int64   (B, F)     0 for numeric columns, 2..max_classes for categorical ones
      target    int64   (B,)       column index of each table's target
      family    str                "scm" or "gaussian"
      mask_kind str                one of MASK_KINDS or "mixed"
      mean, cov float32 (B, F), (B, F, F)   gaussian family only: the exact row distribution
    """
    rng = Rng(generator, device)
    B, N, F = table_shape(cfg, rng, batch_size=batch_size, n_rows=n_rows, n_features=n_features)
    if N < 3 or F < 2:
        raise ValueError(f"tables need >= 3 rows and >= 2 columns, got n_rows={N}, n_features={F}")
    family = family if family is not None else rng.choice(cfg.family_weights)
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")

    if family == "scm":
        nodes = sample_scm_nodes(cfg, rng, B, N, F)
        batch = make_columns(cfg, rng, nodes, F)
    else:
        batch = sample_gaussian_tables(cfg, rng, B, N, F)
        batch["is_cat"] = torch.zeros(B, F, dtype=torch.bool, device=rng.device)
        batch["n_classes"] = torch.zeros(B, F, dtype=torch.long, device=rng.device)
        batch["target"] = rng.randint_t((B,), 0, F - 1)

    if mask_kind is None:
        mask_kind = "mixed" if rng.bernoulli(cfg.p_mixed_masks) else rng.choice(cfg.mask_weights)
    if mask_kind == "mixed":
        names = list(cfg.mask_weights)
        probs = torch.tensor([float(cfg.mask_weights[n]) for n in names], dtype=torch.float64)
        kinds: str | list[str] = [names[i] for i in torch.multinomial(probs, B, True, generator=rng.host)]
    elif mask_kind in MASK_KINDS:
        kinds = mask_kind
    else:
        raise ValueError(f"mask_kind must be one of {MASK_KINDS} or 'mixed', got {mask_kind!r}")
    known, query = sample_mask(cfg, rng, kinds, batch["x"], batch["is_cat"], batch["target"])

    out = {
        "x": batch["x"],
        "known": known,
        "query": query,
        "is_cat": batch["is_cat"],
        "n_classes": batch["n_classes"],
        "target": batch["target"],
        "family": family,
        "mask_kind": mask_kind,
    }
    if family == "gaussian":
        out["mean"], out["cov"] = batch["mean"], batch["cov"]
    return out
