"""Random structural causal models, batched over tables: a layered random MLP graph (TabPFN-style).

Root causes are propagated through ``L`` layers; each layer's node is a mechanism of a random sparse set
of parents in the layer before (a random activation of a linear combination, or an oblivious decision
tree), plus additive / heteroscedastic noise. Every hidden node is a variable of the SCM; ``columns.py``
picks the table's columns (features and target) among them, so columns have causal ancestors,
descendants and siblings among each other.

All tables of a batch share the graph's *shape* (rows N, layers L, width H) so the work is a handful of
batched tensor ops; weights, sparsity, activations, trees and noise differ per table (and per node).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._random import Rng, standardize
from .config import ACTIVATIONS, PriorConfig

NOISE_FAMILIES = ("gaussian", "laplace", "student_t")
ROOT_KINDS = ("normal", "uniform", "clusters", "panel", "heavy")
# Heavy-tailed noise is capped at this many scale units: one extreme draw would otherwise dominate a
# column's std and collapse every other row to a constant after standardization.
MAX_NOISE = 10.0


def sample_scm_nodes(cfg: PriorConfig, rng: Rng, batch_size: int, n_rows: int, n_columns: int) -> Tensor:
    """Sample the hidden nodes of one random SCM per table.

    Returns float32 (B, N, M) with M >= ``n_columns``: all non-root node values (layers concatenated),
    each roughly zero-mean, unit-scale signal plus noise.
    """
    B, N = batch_size, n_rows
    n_layers = rng.int_uniform(*cfg.n_layers)
    n_nodes = max(n_columns, math.ceil(n_columns * rng.uniform(*cfg.nodes_per_column)))
    width = math.ceil(n_nodes / n_layers)
    n_roots = max(1, round(n_columns * rng.log_uniform(*cfg.root_frac)))

    h = _sample_roots(cfg, rng, B, N, n_roots)  # (B, N, n_roots)
    density = rng.uniform_t((B, 1, 1), *cfg.edge_density)
    noise = _NoiseModel(cfg, rng, B)
    # Trees are switched on per batch (a share of every layer's nodes), so batches without them skip
    # that computation; each table still mixes tree and MLP nodes.
    tree_frac = rng.uniform(*cfg.tree_node_frac) if rng.bernoulli(cfg.p_tree) else 0.0

    layers = []
    for _ in range(n_layers):
        h = _sample_layer(cfg, rng, h, width, density, round(tree_frac * width), noise)
        layers.append(h)
    return torch.cat(layers, dim=-1)  # (B, N, L * width)


def _sample_roots(cfg: PriorConfig, rng: Rng, B: int, N: int, n_roots: int) -> Tensor:
    """Root causes (B, N, R): per table Gaussian, uniform, a Gaussian mixture (clustered rows), panel rows or
    heavy-tailed (log-normal) causes."""
    kind = rng.categorical_t((B, 1, 1), cfg.root_weights, ROOT_KINDS)
    normal = rng.randn(B, N, n_roots)
    uniform = torch.erf(normal / math.sqrt(2.0)) * math.sqrt(3.0)  # Phi(normal) is uniform: unit variance
    # Mixture: each row belongs to one of K clusters; centres are spread wider than the within-cluster
    # std so clusters are visible in scatter plots (real tables often have subpopulations).
    k_lo, k_hi = cfg.n_clusters
    n_clusters = rng.randint_t((B, 1, 1), k_lo, k_hi)
    cluster = rng.randint_t((B, N, 1), 0, n_clusters - 1)  # (B, N, 1)
    centres = rng.randn(B, k_hi, n_roots) * 2.0
    within = rng.uniform_t((B, 1, 1), 0.1, 0.6)
    clustered = centres.gather(1, cluster.expand(B, N, n_roots)) + normal * within
    roots = torch.where(kind == 0, normal, torch.where(kind == 1, uniform, clustered))
    if cfg.root_weights.get("panel", 0.0) > 0:  # drawn only when enabled: older priors keep their streams
        roots = torch.where(kind == 3, _panel_roots(cfg, rng, B, N, n_roots), roots)
    if cfg.root_weights.get("heavy", 0.0) > 0:  # likewise
        roots = torch.where(kind == 4, _heavy_roots(cfg, rng, normal), roots)
    return roots


def _heavy_roots(cfg: PriorConfig, rng: Rng, normal: Tensor) -> Tensor:
    """Heavy-tailed causes (B, N, R) from Gaussian ones: log-normal, exp(s * normal) with s per table
    (``heavy_sigma``), mirrored for a random half of the roots. Through identity mechanisms they give columns
    whose largest values lie many standard deviations out and are linear in each other (sizes: applications,
    enrolment and staff of a college), so a row beyond the rest must be imputed beyond the rest."""
    B, _, R = normal.shape
    s = rng.uniform_t((B, 1, 1), *cfg.heavy_sigma)
    sign = torch.where(rng.bernoulli_t((B, 1, R), 0.5), 1.0, -1.0)
    return sign * torch.exp(s * normal)


def _panel_roots(cfg: PriorConfig, rng: Rng, B: int, N: int, n_roots: int) -> Tensor:
    """Repeated measures (B, N, R): many units (states, patients, firms) each observed in several rows, a row
    = its unit's centre + the unit's own trend over a row time in [-1, 1] + a little noise, so the rows of
    one unit are near-duplicates (the structure a nearest-rows estimate exploits and a linear fit misses)."""
    lo, hi = cfg.panel_units_frac
    max_units = max(2, math.ceil(N * hi))
    n_units = (rng.log_uniform_t((B, 1, 1), lo, hi) * N).round().clamp(min=2, max=max_units).long()
    unit = rng.randint_t((B, N, 1), 0, n_units - 1).expand(B, N, n_roots)
    centres = rng.randn(B, max_units, n_roots).gather(1, unit)
    trends = rng.randn(B, max_units, n_roots).gather(1, unit) * rng.uniform_t((B, 1, 1), *cfg.panel_trend)
    time = rng.uniform_t((B, N, 1), -1.0, 1.0)
    return centres + trends * time + rng.randn(B, N, n_roots) * rng.log_uniform_t((B, 1, 1), *cfg.panel_noise)


class _NoiseModel:
    """Per-table noise family and scale; ``draw(pre)`` returns noise shaped like ``pre``.

    Every family is drawn from one uniform per cell through its closed-form quantile function
    (Gaussian, Laplace, Student-t with 2 or 4 degrees of freedom): one random number per cell instead
    of the three a scale-mixture construction needs, and random numbers are the prior's main CPU cost.
    Families are drawn on the host, so only the quantile functions some table uses are computed.
    """

    def __init__(self, cfg: PriorConfig, rng: Rng, B: int) -> None:
        self.cfg, self.rng = cfg, rng
        family = rng.categorical_host(B, cfg.noise_weights, NOISE_FAMILIES)
        dfs = torch.tensor(cfg.student_t_df)
        df = dfs[torch.randint(len(dfs), (B,), generator=rng.host)]
        # codes: 0 Gaussian, 1 Laplace, 2 Student-t(2), 3 Student-t(4)
        code = torch.where(family == 2, torch.where(df == 2, 2, 3), family)
        self.codes = sorted(set(code.tolist()))
        self.code = code.to(rng.device).view(B, 1, 1)
        self.std = rng.log_uniform_t((B, 1, 1), *cfg.noise_std)
        hetero = rng.bernoulli_t((B, 1, 1), cfg.p_heteroscedastic)
        self.hetero = hetero * rng.uniform_t((B, 1, 1), *cfg.hetero_strength)

    def draw(self, pre: Tensor) -> Tensor:
        """Noise (B, N, H) for nodes with standardized pre-activation ``pre`` (B, N, H)."""
        B, N, H = pre.shape
        rng = self.rng
        u = rng.rand(B, N, H).clamp(1e-7, 1 - 1e-7)
        noise = None
        for code in self.codes:
            value = _QUANTILES[code](u)
            noise = value if noise is None else torch.where(self.code == code, value, noise)
        noise = noise.clamp(-MAX_NOISE, MAX_NOISE)
        node_factor = rng.log_uniform_t((B, 1, H), *self.cfg.noise_node_factor)
        # Heteroscedastic: the noise scale grows (or shrinks) with the node's own input.
        scale = self.std * node_factor * torch.exp(self.hetero * pre.clamp(-2.0, 2.0))
        return noise * scale


def _student_t4_quantile(u: Tensor) -> Tensor:
    alpha = 4 * u * (1 - u)
    q = torch.cos(torch.arccos(alpha.sqrt()) / 3) / alpha.sqrt()
    return torch.sign(u - 0.5) * 2 * (q - 1).clamp_min(0).sqrt()


_QUANTILES = {
    0: lambda u: math.sqrt(2.0) * torch.erfinv(2 * u - 1),
    1: lambda u: -torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs()) / math.sqrt(2.0),  # unit var
    2: lambda u: (2 * u - 1) / torch.sqrt(2 * u * (1 - u)),
    3: _student_t4_quantile,
}


_ACTIVATION_FNS = {
    "identity": lambda z: z,
    "tanh": torch.tanh,
    "sin": torch.sin,
    "softplus": torch.nn.functional.softplus,
    "square": torch.square,
    "relu": torch.relu,
    "abs": torch.abs,
    "step": lambda z: (z > 0).to(z.dtype),  # a binary node: a yes/no variable driven by a latent score
}


def _sample_layer(
    cfg: PriorConfig, rng: Rng, h_prev: Tensor, width: int, density: Tensor, n_tree: int, noise: _NoiseModel
) -> Tensor:
    """One layer of the graph: (B, N, P) parents -> (B, N, width) children.

    The first ``n_tree`` nodes are oblivious trees, the rest MLP nodes. Activations are assigned to
    contiguous slices of nodes (shared by the tables of the batch, so each activation runs once on its
    slice instead of all of them on every node); which node becomes which column is random per table,
    so every table still sees a random mix.
    """
    B, _, P = h_prev.shape
    edges = rng.rand(B, P, width) < density
    edges.scatter_(1, rng.randint_t((B, 1, width), 0, P - 1), True)  # every node keeps >= 1 parent
    weights = rng.randn(B, P, width) * edges
    pre = standardize(torch.bmm(h_prev, weights))  # (B, N, width)

    gain = rng.log_uniform_t((B, 1, width), *cfg.act_gain)
    shift = rng.randn(B, 1, width) * cfg.act_shift_std
    z = pre * gain + shift
    parts = [_oblivious_tree(cfg, rng, h_prev, pre[..., :n_tree])] if n_tree else []
    kinds = rng.categorical_host(width - n_tree, cfg.activation_weights, ACTIVATIONS)
    start = n_tree
    for i, count in enumerate(torch.bincount(kinds, minlength=len(ACTIVATIONS)).tolist()):
        if count:
            parts.append(_ACTIVATION_FNS[ACTIVATIONS[i]](z[..., start : start + count]))
            start += count
    out = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
    return standardize(out) + noise.draw(pre)


def _oblivious_tree(cfg: PriorConfig, rng: Rng, h_prev: Tensor, pre: Tensor) -> Tensor:
    """Piecewise-constant mechanism: an oblivious decision tree per node.

    Each of ``depth`` levels splits on one parent (or, oblique split, on the node's own linear
    pre-activation) at the value of a random row, i.e. at a random empirical quantile. The leaf index
    picks one of 2**depth random leaf values. h_prev (B, N, P), pre (B, N, H) -> (B, N, H).
    """
    B, N, P = h_prev.shape
    H = pre.shape[-1]
    d_lo, d_hi = cfg.tree_depth
    D = d_hi
    split_var = rng.randint_t((B, 1, H * D), 0, P)  # P means "the node's own pre-activation"
    vals = h_prev.gather(2, split_var.clamp(max=P - 1).expand(B, N, H * D)).view(B, N, H, D)
    vals = torch.where((split_var == P).view(B, 1, H, D), pre.unsqueeze(-1), vals)
    row = rng.randint_t((B, 1, H, D), 0, N - 1)
    threshold = vals.gather(1, row)  # (B, 1, H, D)
    depth = rng.randint_t((B, 1, H, 1), d_lo, d_hi)
    level = torch.arange(D, device=rng.device)
    bits = (vals > threshold) & (level < depth)  # (B, N, H, D); levels beyond the depth are unused
    leaf = (bits * (2**level)).sum(-1)  # (B, N, H) in [0, 2**D)
    leaf_values = rng.randn(B, 1, H, 2**D).expand(B, N, H, 2**D)
    return leaf_values.gather(-1, leaf.unsqueeze(-1)).squeeze(-1)
