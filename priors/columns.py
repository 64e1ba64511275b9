"""From SCM nodes to table columns: which nodes, which column is the target, categoricals, post-transforms.

Real tables are not standardized Gaussians: columns are skewed, rounded to integers, censored, carry
rare gross errors, are nearly constant, and live on any scale; categorical columns are unordered codes.
Each such property is switched on per column at random with the probabilities in ``PriorConfig``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._random import Rng, standardize
from .config import PriorConfig

# exp() of a skewed column is capped at e**MAX_SKEW_EXPONENT (~1.6e5) so that squares of the final values
# (scale up to 1e3) stay far from float32 overflow in any downstream statistics.
MAX_SKEW_EXPONENT = 12.0


def make_columns(cfg: PriorConfig, rng: Rng, nodes: Tensor, n_features: int) -> dict[str, Tensor]:
    """Pick ``n_features`` of the SCM nodes (B, N, M) as columns and turn them into a table.

    Returns ``x`` float32 (B, N, F), ``is_cat`` bool (B, F), ``n_classes`` int64 (B, F) and ``target``
    int64 (B,). The column order is random, so the target (one of the picked nodes) sits at a random
    position and may be a cause, an effect or a sibling of any feature.
    """
    B, N, M = nodes.shape
    F = n_features
    pick = rng.permutation_t(B, M)[:, :F]  # (B, F)
    z = standardize(nodes.gather(2, pick.unsqueeze(1).expand(B, N, F)))
    z = z.clamp(-cfg.max_abs_z, cfg.max_abs_z)  # (B, N, F)
    if cfg.p_group > 0:
        z = group_columns(cfg, rng, z)

    target = rng.randint_t((B,), 0, F - 1)
    is_target = torch.nn.functional.one_hot(target, F).bool()  # (B, F)
    has_cat = rng.bernoulli_t((B, 1), cfg.p_has_categorical)
    cat_frac = rng.uniform_t((B, 1), *cfg.categorical_frac) * has_cat
    is_cat = rng.rand(B, F) < cat_frac
    is_cat = torch.where(is_target, rng.bernoulli_t((B, 1), cfg.p_classification), is_cat)
    n_classes = _draw_n_classes(cfg, rng, B, F, N) * is_cat

    # A categorical column is binned from its node mixed with a second (possibly hidden) node, so its
    # codes are not just a coarsened copy of one numeric variable.
    other = nodes.gather(2, rng.randint_t((B, 1, F), 0, M - 1).expand(B, N, F))
    mix = rng.uniform_t((B, 1, F), *cfg.categorical_mix)
    codes = categorize(rng, z + mix * standardize(other), n_classes, cfg.max_classes)
    if cfg.p_multinomial > 0:
        multinomial = rng.bernoulli_t((B, 1, F), cfg.p_multinomial)
        codes = torch.where(multinomial, multinomial_codes(cfg, rng, nodes, n_classes), codes)
    if cfg.p_derived > 0:
        codes, z = derive(cfg, rng, z, codes, is_cat, n_classes)

    numeric = post_transform(cfg, rng, z, is_target)
    x = torch.where(is_cat.unsqueeze(1), codes.to(z.dtype), numeric)
    return {"x": x, "is_cat": is_cat, "n_classes": n_classes, "target": target}


def _draw_n_classes(cfg: PriorConfig, rng: Rng, B: int, F: int, n_rows: int) -> Tensor:
    """Number of levels (B, F) in [2, k_max]: binary with p_binary, else log-uniform in [2, k_max] (few
    levels are common in real tables, many-level columns rarer but present)."""
    k_max = max(2, min(cfg.max_classes, n_rows // cfg.min_rows_per_class))
    k = torch.exp(rng.uniform_t((B, F), 0.0, 1.0) * (math.log(k_max + 1) - math.log(2)) + math.log(2))
    k = k.floor().long().clamp(2, k_max)
    return torch.where(rng.bernoulli_t((B, F), cfg.p_binary), 2, k)


def multinomial_codes(cfg: PriorConfig, rng: Rng, nodes: Tensor, n_classes: Tensor) -> Tensor:
    """Codes (B, N, F) as the argmax over levels of a linear score of a few random parent nodes plus a
    per-level bias and Gumbel noise (a multinomial logit model); levels >= n_classes are never drawn."""
    B, N, M = nodes.shape
    F, K = n_classes.shape[1], cfg.max_classes
    P = rng.int_uniform(*cfg.multinomial_parents)
    parents = standardize(nodes.gather(2, rng.randint_t((B, 1, P), 0, M - 1).expand(B, N, P)))  # (B, N, P)
    weights = rng.randn(B, P, F * K)
    bias = rng.randn(B, 1, F * K) * cfg.multinomial_bias_std
    temp = rng.log_uniform_t((B, 1, F, 1), *cfg.multinomial_noise)
    u = rng.rand(B, N, F, K).clamp(1e-7, 1 - 1e-7)
    score = (torch.bmm(parents, weights) + bias).view(B, N, F, K) - temp * torch.log(-torch.log(u))
    unused = torch.arange(K, device=nodes.device) >= n_classes[:, None, :, None]
    return score.masked_fill(unused, float("-inf")).argmax(-1)


def derive(cfg: PriorConfig, rng: Rng, z: Tensor, codes: Tensor, is_cat: Tensor, n_classes: Tensor) -> tuple[Tensor, Tensor]:
    """Make a share ``cfg.p_derived`` of the categorical columns functions of a numeric column of their table.

    z (B, N, F) standardized nodes of every column; codes (B, N, F); is_cat, n_classes (B, F). A derived
    column's source is a random numeric column. Half of the binary ones are hurdles: the source is piled up
    at a cut (a random quantile, ``cfg.hurdle_quantile``) and the code says whether a row is above it; the
    others are coarse copies, the source binned at random quantiles (``categorize``). Returns (codes, z)
    with the sources' censoring applied to z; nothing else changes.
    """
    B, N, F = z.shape
    numeric = ~is_cat
    derived = rng.bernoulli_t((B, F), cfg.p_derived) & is_cat & numeric.any(1, keepdim=True)
    src = (rng.rand(B, F, F) + 2.0 * numeric[:, None, :]).argmax(-1)  # (B, F): a numeric column if any
    hurdle = derived & (n_classes == 2) & rng.bernoulli_t((B, F), 0.5)
    z_src = z.gather(2, src.unsqueeze(1).expand(B, N, F))
    rank = (rng.uniform_t((B, 1, F), *cfg.hurdle_quantile) * (N - 1)).long()
    cut = z_src.sort(dim=1).values.gather(1, rank)  # (B, 1, F)
    # Censor each source at the highest cut of the hurdles reading it (-inf: not a hurdle's source).
    floor = torch.full((B, F), float("-inf"), dtype=z.dtype, device=z.device)
    floor = floor.scatter_reduce(1, src, torch.where(hurdle, cut[:, 0], float("-inf")), "amax")
    z = torch.maximum(z, floor.unsqueeze(1))
    z_src = z.gather(2, src.unsqueeze(1).expand(B, N, F))
    above = (z_src > cut) ^ rng.bernoulli_t((B, 1, F), 0.5)  # which side is level 0: labels are unordered
    coarse = categorize(rng, z_src, n_classes, cfg.max_classes)
    derived_codes = torch.where(hurdle.unsqueeze(1), above.long(), coarse)
    return torch.where(derived.unsqueeze(1), derived_codes, codes), z


def quantile_bins(rng: Rng, score: Tensor, levels: Tensor, max_levels: int) -> Tensor:
    """Ordered integer bins (B, N, F) in [0, levels) of a continuous score (B, N, F): each cell's count of its
    column's levels - 1 thresholds strictly below it, the thresholds at the score of random rows (at random
    empirical quantiles, so bin sizes are Dirichlet-like); levels (B, F), at most max_levels."""
    B, N, F = score.shape
    rows = rng.randint_t((B, max_levels - 1, F), 0, N - 1)
    thresholds = score.gather(1, rows).transpose(1, 2)  # (B, F, K-1)
    unused = torch.arange(max_levels - 1, device=score.device) >= (levels - 1).unsqueeze(-1)
    thresholds = thresholds.masked_fill(unused, float("inf")).sort(dim=-1).values
    return torch.searchsorted(thresholds, score.transpose(1, 2).contiguous(), side="left").transpose(1, 2)


def categorize(rng: Rng, score: Tensor, n_classes: Tensor, max_classes: int) -> Tensor:
    """Unordered integer codes from a continuous score.

    score (B, N, F); n_classes (B, F) (0 or 1 -> all codes 0). Thresholds sit at random empirical
    quantiles (so class sizes are Dirichlet-like: some rare, some common); a random permutation of the
    labels then removes the order, as for real categories. Returns int64 (B, N, F) in [0, n_classes).
    """
    B, _, F = score.shape
    K = max_classes
    bins = quantile_bins(rng, score, n_classes, K).transpose(1, 2)  # (B, F, N)
    # Random bijection of 0..K-1: unused labels get keys > 1 so they sort last.
    unused = torch.arange(K, device=score.device) >= n_classes.unsqueeze(-1)  # (B, F, K)
    perm = torch.argsort(rng.rand(B, F, K) + 2.0 * unused, dim=-1)
    return perm.gather(2, bins).transpose(1, 2)


def post_transform(cfg: PriorConfig, rng: Rng, z: Tensor, is_target: Tensor) -> Tensor:
    """Make standardized columns z (B, N, F) look like real numeric data; returns (B, N, F).

    Order matters: censoring and gross errors act on the measured quantity, skew and integer rounding
    define its unit, and the final scale / offset puts it anywhere on the real line.
    """
    B, N, F = z.shape

    def per_column(p: float) -> Tensor:
        return rng.bernoulli_t((B, 1, F), p)

    # Censoring: pile the low (or high) tail of the column up at a bound t std from the mean.
    bound = rng.uniform_t((B, 1, F), *cfg.clip_at)
    lower = rng.bernoulli_t((B, 1, F), 0.5)
    clipped = torch.where(lower, torch.maximum(z, -bound), torch.minimum(z, bound))
    z = torch.where(per_column(cfg.p_clip), clipped, z)

    # One uniform per cell serves both cell-level choices below: U < rate marks a gross error (and
    # U / rate, uniform again, gives its sign and size); U > 1 - frac marks a near-constant cell.
    u = rng.rand(B, N, F)
    rate = rng.uniform_t((B, 1, F), *cfg.outlier_rate)
    hit = (u < rate) & per_column(cfg.p_outliers)
    v = u / rate
    lo, hi = cfg.outlier_size
    size = torch.where(v < 0.5, -1.0, 1.0) * (lo + (hi - lo) * (2 * v - 1).abs())
    z = torch.where(hit, z + size, z)  # rare gross errors, a few column stds away

    # Log-normal-like positive skew.
    skew = per_column(cfg.p_skew)
    a = rng.uniform_t((B, 1, F), *cfg.skew_strength)
    v = torch.where(skew, torch.exp((a * z).clamp(max=MAX_SKEW_EXPONENT)), z)

    # Final unit: integer columns (counts, ordinal scores) or floats on an arbitrary scale. Skewed
    # columns keep offset 0 so they stay positive, like incomes or counts.
    offset = rng.randn(B, 1, F) * cfg.shift_std * ~skew
    int_scale = rng.log_uniform_t((B, 1, F), *cfg.integer_scale)
    as_int = torch.round(v * int_scale) + torch.round(offset * int_scale)
    scale = torch.pow(10.0, rng.uniform_t((B, 1, F), *cfg.log10_scale))
    as_float = (v + offset) * scale
    x = torch.where(per_column(cfg.p_integer), as_int, as_float)
    if cfg.p_ordinal > 0:
        x = torch.where(per_column(cfg.p_ordinal), ordinal_codes(cfg, rng, v), x)

    # Near-constant columns: most rows share one value (taken from a random row), never the target.
    const = x.gather(1, rng.randint_t((B, 1, F), 0, N - 1))
    frac = rng.uniform_t((B, 1, F), *cfg.near_constant_frac)
    near_const = per_column(cfg.p_near_constant) & ~is_target.unsqueeze(1)
    x = torch.where(near_const & (u > 1 - frac), const, x)
    return x


def ordinal_codes(cfg: PriorConfig, rng: Rng, z: Tensor) -> Tensor:
    """(B, N, F) every column of z (B, N, F) recorded as a few ordered levels (``quantile_bins``: thresholds at
    random quantiles of the column), counted from 0 or 1 (a 0/1 dummy, a score 1..K). Equal values get equal codes."""
    B, _, F = z.shape
    k_max = cfg.max_ordinal_levels
    levels = torch.where(rng.bernoulli_t((B, F), cfg.ordinal_binary), 2, rng.randint_t((B, F), 3, k_max))
    codes = quantile_bins(rng, z, levels, k_max)
    return (codes + rng.randint_t((B, 1, F), 0, 1)).to(z.dtype)


def group_columns(cfg: PriorConfig, rng: Rng, z: Tensor) -> Tensor:
    """z (B, N, F) with some of its columns made group-level (``PriorConfig.p_group``): each such column holds, in
    every row, the mean of its values over the row's group, standardized again."""
    B, N, F = z.shape
    size = rng.log_uniform_t((B, 1), *cfg.group_size)  # rows per group
    coherence = rng.rand(B, 1)  # 1: groups of rows alike in their columns; 0: arbitrary groups
    direction = standardize(z @ rng.randn(B, F, 1), dim=1).squeeze(2)  # (B, N)
    score = coherence * direction + (1 - coherence) * rng.randn(B, N)
    group = (score.argsort(1).argsort(1) / size).long()  # (B, N) ids of runs of `size` rows in score order
    index = group.unsqueeze(2).expand(B, N, F)
    sums = torch.zeros(B, N, F, dtype=z.dtype, device=z.device).scatter_add_(1, index, z)
    counts = torch.zeros(B, N, 1, dtype=z.dtype, device=z.device).scatter_add_(1, group.unsqueeze(2),
                                                                               torch.ones_like(z[..., :1]))
    means = standardize((sums / counts.clamp(min=1)).gather(1, index))
    share = rng.uniform_t((B, 1, 1), *cfg.group_col_frac)
    chosen = rng.bernoulli_t((B, 1, 1), cfg.p_group) & (rng.rand(B, 1, F) < share)
    return torch.where(chosen, means, z)
