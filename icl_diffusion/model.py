"""The set-equivariant denoiser: a transformer over the cells of a table.

Every cell is a token ``(B, N, F, D)``. Each block attends across rows within a column (so a cell sees how
its column behaves in the other rows: the in-context "training set"), then across features within a row
(so a cell sees the other cells of its row), then applies an MLP. No positional encoding anywhere:
permuting rows or features permutes the output the same way.

Across rows, a cell attends only to *key rows*. By default every row is a key row; at inference the caller
picks a capped subset of rows as keys (``encode_context`` + ``context=``), which makes one call linear in the
number of rows, and lets query rows be processed in chunks against the cached keys. Row attention can also
be ``"isab"`` (Set Transformer induced points), linear in rows at any table size.

Timestep conditioning reaches only the unknown (noisy) cells. So a key row whose cells are all known, and
which attends only to key rows, is encoded identically at every denoising step: the sampler can encode the
context once and reuse it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .diffusion import MASK, schedule_alphas_cumprod
from .gaussian_feature import cell_estimates, converged_em
from .neighbour_feature import neighbour_estimates
from .noisy_feature import denoised_estimates, noisy_cells
from .tree_regression import feature_estimates


@dataclass
class DenoiserConfig:
    d_model: int = 64  # small: the dev machine trains on 2 CPU cores; enough for in-context regression
    n_blocks: int = 4  # each block = row attention + feature attention + MLP
    n_heads: int = 4
    mlp_ratio: int = 2
    # Levels of a categorical column (and classes of a target) the API accepts. No weight depends on it:
    # levels are told apart by random identity vectors (below), so any count up to this works.
    max_classes: int = 100
    row_attention: str = "full"  # "full": attend to key rows (capped by the caller); "isab": induced points
    n_inducing: int = 32  # only for "isab"
    num_steps: int = 1000  # diffusion length, to scale t into the time embedding
    # Random per-column identity vectors (TabPFN-style): standardized columns are otherwise
    # indistinguishable, so a cell could not tell which value in its row belongs to which feature.
    col_embed_dim: int = 16
    # Feed each numeric cell the closed-form linear-Gaussian estimate from its row's known cells
    # (gaussian_feature.py): in-context linear regression for free, the network learns the rest.
    gaussian_feature: bool = True
    gaussian_em_iters: int = 0  # EM refinements of the feature's Gaussian fit (0 = pairwise covariance)
    # Categorical columns enter that Gaussian fit one-hot: every categorical cell gets a closed-form
    # class-probability estimate (embedded in its token, and added to its logits as a skip connection).
    categorical_feature: bool = True
    # Random per-level identity vectors (like the column identities): category codes are unordered labels,
    # so a level is embedded, and scored, through a vector that means nothing outside its table.
    level_embed_dim: int = 32
    # Feed every cell the nearest-rows estimate too (neighbour_feature.py): a kernel-weighted average over
    # the key rows closest to its row, the nonlinear counterpart of the Gaussian estimate, and how close
    # those rows are. Its input layers start at zero, so switching it on keeps a checkpoint's outputs.
    neighbour_feature: bool = False
    # Which key rows the nearest-rows estimate averages: "all" weighs every key row by the kernel (the far ones,
    # many, together take a large share where distances crowd, pulling the estimate toward the column mean);
    # "nearest" only the ``neighbour_feature.NEIGHBOURS`` nearest (session 21: alone, the estimate's NRMSE on
    # the grid's MCAR rows 0.701 -> 0.677, AER/Guns 0.457 -> 0.356 at 10%; benchmarks/results/imputation.md).
    # Trained with it (stage 39) the network gained under MCAR and lost under MAR and on categorical cells:
    # not adopted (checkpoints/README.md).
    neighbour_kernel: str = "all"
    # Feed every numeric cell the exact Gaussian denoiser of the noisy table (noisy_feature.py): its posterior
    # mean and log variance given the known cells exactly and the noisy cells at their noise level, so the
    # network reads x_t as much as it deserves at every t, also in RePaint mode where nothing is known. Its
    # input layer starts at zero. The noise level of step t comes from ``schedule`` (the diffusion's).
    noisy_feature: bool = False
    # The numeric output plus a learned per-cell weight (a zero-initialized linear map of the cell's final hidden
    # state) times the noisy-table Gaussian denoiser's posterior mean (``noisy_feature``): that estimate reaches the
    # output directly, not only through the value embedding, and the network learns where to lean on it. Why
    # (issue 14, session 32): with the feature as an input only, the network's RePaint on whole tables stayed worse
    # than the Gaussian denoiser's alone after 5,600 steps (benchmarks/results/repaint_stage33.md). Zero-initialized:
    # switching it on keeps a checkpoint's outputs. Needs noisy_feature.
    numeric_skip: bool = False
    # Numeric columns piled up at their smallest value (a hurdle: zero hours, zero spending) enter the Gaussian
    # fit with that point mass's indicator too (gaussian_feature.point_masses), so categories that say which side
    # of the hurdle a row is on, and the numeric cells that depend on it, get a linear estimate. Not with
    # noisy_feature.
    point_mass_feature: bool = False
    # Feed every numeric cell the trees' estimate too (tree_regression.feature_estimates: extremely randomized
    # trees on the row's other cells, fitted to the key rows as the point estimate's blend fits them), and add it to
    # the numeric output at a learned per-cell weight: the nonlinear estimate the blend leans on most (issue 13),
    # so that the network learns from the prior where to trust it and where not (e.g. beyond the range the trees
    # learnt from). Its input layer and output weight start at zero: switching it on keeps a checkpoint's outputs.
    # Needs gaussian_feature (the trees read the unknown cells as the Gaussian estimate fills them). The trees grow
    # on the host (scikit-learn), table by table: on a GPU every step waits for them (outside issue 16's sync-free
    # step). Stages 75-76 (session 49): the network alone gained, the blended point estimate did not (not adopted).
    tree_feature: bool = False
    schedule: str = "cosine"

    def to_dict(self) -> dict:
        return asdict(self)


class RowAttention(nn.Module):
    """Attention across rows within each column; keys restricted to key rows."""

    def __init__(self, cfg: DenoiserConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)
        self.isab = cfg.row_attention == "isab"
        if self.isab:
            self.inducing = nn.Parameter(torch.randn(cfg.n_inducing, d) / math.sqrt(d))
            self.ind_q = nn.Linear(d, d)
            self.ind_out = nn.Linear(d, d)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        # (S, L, D) -> (S, H, L, D/H)
        S, L, D = x.shape
        return x.view(S, L, self.n_heads, D // self.n_heads).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        S, H, L, Dh = x.shape
        return x.transpose(1, 2).reshape(S, L, H * Dh)

    def keys(self, h: torch.Tensor, key_mask: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """Keys/values of the key rows. h: (B, N, F, D) normalized tokens -> tensors over (B*F, ...)."""
        B, N, Fe, D = h.shape
        x = h.permute(0, 2, 1, 3).reshape(B * Fe, N, D)  # (B*F, N, D)
        mask = None
        if key_mask is not None:
            mask = key_mask[:, None, :].expand(B, Fe, N).reshape(B * Fe, 1, 1, N)
            # Masked rows get weight 0, but 0 * NaN is NaN: whatever padding holds must not reach a key.
            x = x.masked_fill(~mask.reshape(B * Fe, N, 1), 0.0)
        k, v = self.kv(x).chunk(2, -1)
        k, v = self._heads(k), self._heads(v)
        if not self.isab:
            return k, v, mask
        # ISAB step 1: inducing points summarize the key rows of each column; (B*F, M, D)
        iq = self._heads(self.ind_q(self.inducing).expand(B * Fe, -1, -1))
        ind = self._merge(F.scaled_dot_product_attention(iq, k, v, attn_mask=mask))
        ind = self.inducing + self.ind_out(ind)
        k2, v2 = self.kv(ind).chunk(2, -1)
        return self._heads(k2), self._heads(v2), None

    def forward(self, h: torch.Tensor, kv: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """h: (B, N, F, D) normalized query tokens; kv from ``keys`` (with the same B and F)."""
        B, N, Fe, D = h.shape
        k, v, mask = kv
        q = self._heads(self.q(h.permute(0, 2, 1, 3).reshape(B * Fe, N, D)))  # (B*F, H, N, Dh)
        if k.shape[0] != q.shape[0]:  # cached context of one table shared by B samples
            k, v = k.repeat(q.shape[0] // k.shape[0], 1, 1, 1), v.repeat(q.shape[0] // v.shape[0], 1, 1, 1)
            mask = None if mask is None else mask.repeat(q.shape[0] // mask.shape[0], 1, 1, 1)
        o = self._merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))  # (B*F, N, D)
        return self.out(o).view(B, Fe, N, D).permute(0, 2, 1, 3)


class FeatureAttention(nn.Module):
    """Attention across the features of each row."""

    def __init__(self, cfg: DenoiserConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, h: torch.Tensor, col_mask: torch.Tensor | None) -> torch.Tensor:
        B, N, Fe, D = h.shape
        H = self.n_heads
        if col_mask is not None:  # padded features are never keys, and their content must not leak (NaN)
            h = h.masked_fill(~col_mask[:, None, :, None], 0.0)
        qkv = self.qkv(h.reshape(B * N, Fe, D)).view(B * N, Fe, 3, H, D // H).permute(2, 0, 3, 1, 4)
        mask = None
        if col_mask is not None:
            mask = col_mask[:, None, :].expand(B, N, Fe).reshape(B * N, 1, 1, Fe)
        o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask)  # (B*N, H, F, Dh)
        return self.out(o.transpose(1, 2).reshape(B, N, Fe, D))


class Block(nn.Module):
    def __init__(self, cfg: DenoiserConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.time = nn.Linear(d, d)
        self.norm_row, self.norm_feat, self.norm_mlp = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.row_attn = RowAttention(cfg)
        self.feat_attn = FeatureAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(), nn.Linear(cfg.mlp_ratio * d, d))

    def silence(self) -> None:
        """Zero every layer that writes into the residual stream, so the block is the identity. A network grown
        by such blocks (``init_from`` a shallower checkpoint) computes exactly what it computed before; training
        opens them, since each zeroed layer still gets a gradient from its input."""
        for layer in (self.time, self.row_attn.out, self.feat_attn.out, self.mlp[-1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, h, temb, unknown, key_mask, col_mask, kv=None):
        """h: (B, N, F, D); temb: (B, D); unknown: (B, N, F, 1) float. Returns (h, kv of these rows)."""
        h = h + self.time(temb)[:, None, None, :] * unknown
        hn = self.norm_row(h)
        own_kv = self.row_attn.keys(hn, key_mask) if kv is None else None
        h = h + self.row_attn(hn, own_kv if kv is None else kv)
        h = h + self.feat_attn(self.norm_feat(h), col_mask)
        h = h + self.mlp(self.norm_mlp(h))
        return h, own_kv


class Denoiser(nn.Module):
    """Predicts, for every cell, the diffusion target (numeric) and class logits (categorical)."""

    def __init__(self, cfg: DenoiserConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.value = nn.Sequential(nn.Linear(2 if cfg.gaussian_feature else 1, d), nn.GELU(), nn.Linear(d, d))
        self.level_in = nn.Linear(cfg.level_embed_dim, d)  # a level distribution's mean identity vector
        self.mask_token = nn.Parameter(torch.zeros(d))  # added to absorbed (MASK) categorical cells
        self.flags = nn.Embedding(4, d)  # (known, is_cat) pairs
        self.col_proj = nn.Linear(cfg.col_embed_dim, d, bias=False) if cfg.col_embed_dim else None
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_blocks))
        self.norm_out = nn.LayerNorm(d)
        self.num_head = nn.Linear(d, 1)
        # Logit of level k = <query of the cell, key of level k's identity vector> (+ log of the closed-form
        # probability): any number of levels, and relabelling levels relabels the logits the same way.
        self.level_q = nn.Linear(d, d)
        self.level_k = nn.Linear(cfg.level_embed_dim, d)
        self.prob_skip = nn.Parameter(torch.ones(()))
        if cfg.neighbour_kernel not in ("all", "nearest"):
            raise ValueError(f"neighbour_kernel must be 'all' or 'nearest', got {cfg.neighbour_kernel!r}")
        if cfg.neighbour_feature:  # zero-initialized: a network trained without the feature is unchanged
            self.neighbour_in = nn.Linear(3, d)  # (smooth, sharp estimate, log distance) into the value MLP
            self.neighbour_level_in = nn.Linear(cfg.level_embed_dim, d)  # the estimate's level mixture
            self.neighbour_skip = nn.Parameter(torch.zeros(()))  # weight of its log-probabilities in the logits
            for p in (*self.neighbour_in.parameters(), *self.neighbour_level_in.parameters()):
                nn.init.zeros_(p)
        if cfg.noisy_feature:  # zero-initialized like the neighbour feature
            if not cfg.gaussian_feature:
                raise ValueError("noisy_feature needs gaussian_feature (it uses the same Gaussian fit)")
            self.noisy_in = nn.Linear(2, d)  # (posterior mean, log posterior variance) into the value MLP
            nn.init.zeros_(self.noisy_in.weight)
            nn.init.zeros_(self.noisy_in.bias)
            self.register_buffer("alphas_cumprod", schedule_alphas_cumprod(cfg.num_steps, cfg.schedule).float(),
                                 persistent=False)
        if cfg.numeric_skip:
            if not cfg.noisy_feature:
                raise ValueError("numeric_skip needs noisy_feature (its posterior mean is what the skip carries)")
            self.skip_gate = nn.Linear(d, 1)  # the posterior mean's weight in the numeric output, per cell
            nn.init.zeros_(self.skip_gate.weight)
            nn.init.zeros_(self.skip_gate.bias)
        if cfg.tree_feature:  # zero-initialized like the features above
            if not cfg.gaussian_feature:
                raise ValueError("tree_feature needs gaussian_feature (the trees read its estimate)")
            self.tree_in = nn.Linear(2, d)  # (trees' estimate less the Gaussian one, fitted flag) into the value MLP
            self.tree_gate = nn.Linear(d, 1)  # that difference's weight in the numeric output, per cell
            for p in (*self.tree_in.parameters(), *self.tree_gate.parameters()):
                nn.init.zeros_(p)

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        half = self.cfg.d_model // 2
        freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
        arg = (t.float() * 1000 / self.cfg.num_steps)[:, None] * freqs[None]
        return self.time_mlp(torch.cat([arg.sin(), arg.cos()], -1))  # (B, D)

    def column_embeddings(self, n_features: int, seed: int = 0, device=None) -> torch.Tensor:
        """The default identity vectors (F, col_embed_dim) of ``n_features`` columns: seeded, so the same
        table gets the same output; training draws fresh ones for every table."""
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n_features, self.cfg.col_embed_dim, generator=g).to(device)

    def level_embeddings(self, n_features: int, n_levels: int, seed: int = 1, device=None) -> torch.Tensor:
        """The default level identity vectors (F, n_levels, level_embed_dim): seeded like the column
        identities; training draws fresh ones for every table."""
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n_features, n_levels, self.cfg.level_embed_dim, generator=g).to(device)

    def embed(self, x, known, is_cat, level_embed, gauss=None, probs=None, neighbours=None, denoised=None, trees=None):
        """Cell tokens (B, N, F, D) from values x (B, N, F), known (B, N, F), is_cat (B, F), the level identity
        vectors (B or 1, F, C, level_embed_dim), and the closed-form estimates when the config uses them:
        gauss (B, N, F) for numeric cells, probs (B, N, F, C) for categorical ones; ``neighbours`` is the
        nearest-rows estimates (``neighbour_estimates``'s four tensors) or None; ``denoised`` the noisy-table
        Gaussian denoiser's (posterior mean, log variance) (``denoised_estimates``) or None; ``trees`` the trees'
        (estimate less the Gaussian one, fitted flag) (``tree_feature``) or None.

        A categorical cell embeds a distribution over its levels: its code (one-hot) when known or revealed,
        the closed-form probabilities (or nothing) while absorbed."""
        cat = is_cat[:, None, :].expand_as(x)
        value = torch.where(cat, torch.zeros_like(x), x).unsqueeze(-1)
        if gauss is not None:
            value = torch.cat([value, gauss.unsqueeze(-1)], -1)
        hidden = self.value[0](value)
        if neighbours is not None:
            smooth, sharp, _, log_dist = neighbours
            hidden = hidden + self.neighbour_in(torch.stack([smooth, sharp, log_dist[..., None].expand_as(sharp)], -1))
        if denoised is not None:
            hidden = hidden + self.noisy_in(torch.stack(denoised, -1))
        if trees is not None:
            hidden = hidden + self.tree_in(torch.stack(trees, -1))
        num_tok = self.value[2](self.value[1](hidden))
        C = level_embed.shape[-2]
        masked = cat & (x == MASK)
        codes = torch.where(cat & ~masked, x, torch.zeros_like(x)).long().clamp(0, C - 1)
        dist = F.one_hot(codes, C).to(x.dtype)  # (B, N, F, C)
        dist = torch.where(masked.unsqueeze(-1), torch.zeros_like(dist) if probs is None else probs, dist)
        cat_tok = self.level_in(torch.einsum("bnfc,bfce->bnfe", dist, level_embed.expand(x.shape[0], -1, -1, -1)))
        cat_tok = cat_tok + masked.unsqueeze(-1) * self.mask_token
        if neighbours is not None:
            mix = torch.einsum("bnfc,bfce->bnfe", neighbours[2], level_embed.expand(x.shape[0], -1, -1, -1))
            cat_tok = cat_tok + masked.unsqueeze(-1) * self.neighbour_level_in(mix)
        tok = torch.where(cat.unsqueeze(-1), cat_tok, num_tok)
        return tok + self.flags(known.long() * 2 + cat.long())

    def heads(self, h, n_classes, level_embed, probs=None, neighbour_probs=None, denoised_mean=None, trees=None):
        """Numeric output (B, N, F) and level logits (B, N, F, C); levels beyond a column's count get -1e4.
        ``denoised_mean`` (B, N, F): the noisy-table Gaussian denoiser's posterior mean, added to the numeric output
        at the weight ``skip_gate`` reads off each cell (``numeric_skip``); ``trees`` (B, N, F): the trees' estimate
        less the Gaussian one, likewise at the weight ``tree_gate`` reads (``tree_feature``)."""
        h = self.norm_out(h)
        B, C = h.shape[0], level_embed.shape[-2]
        keys = self.level_k(level_embed).expand(B, -1, -1, -1)  # (B, F, C, D)
        logits = torch.einsum("bnfd,bfcd->bnfc", self.level_q(h), keys) / math.sqrt(h.shape[-1])
        if probs is not None:
            logits = logits + self.prob_skip * probs.clamp(min=1e-4).log()
        if neighbour_probs is not None:
            logits = logits + self.neighbour_skip * neighbour_probs.clamp(min=1e-4).log()
        valid = torch.arange(C, device=h.device) < n_classes.clamp(min=1)[:, None, :, None]
        numeric = self.num_head(h).squeeze(-1)
        if denoised_mean is not None:
            numeric = numeric + self.skip_gate(h).squeeze(-1) * denoised_mean
        if trees is not None:
            numeric = numeric + self.tree_gate(h).squeeze(-1) * trees
        return numeric, logits.masked_fill(~valid, -1e4)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        known: torch.Tensor,
        is_cat: torch.Tensor,
        n_classes: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        col_mask: torch.Tensor | None = None,
        context: list | None = None,
        return_context: bool = False,
        col_embed: torch.Tensor | None = None,
        gaussian_fit: tuple[torch.Tensor, torch.Tensor] | None = None,
        level_embed: torch.Tensor | None = None,
        n_levels: int | None = None,
        withhold_closed_form: torch.Tensor | None = None,
        return_inputs: bool = False,
        one_hot: dict | None = None,
    ):
        """Denoise one step.

        Args:
            x: (B, N, F) noisy values (standardized numeric; categorical codes or MASK).
            t: (B,) original diffusion step. known: (B, N, F) bool. is_cat: (B, F) bool.
            n_classes: (B, F) long (0 for numeric columns).
            key_mask: (B, N) bool, rows other rows may attend to (also the row padding mask). None = all.
            col_mask: (B, F) bool, real (non-padded) features. None = all.
            context: what a previous ``return_context=True`` call on the key rows returned (per-block keys,
                the key rows' Gaussian fit: mean, covariance, and their values and known flags, and with
                ``tree_feature`` the rows the trees are fitted on); when given, the rows of ``x`` attend only to those
                cached rows (``key_mask`` is ignored).
            col_embed: (B, F, col_embed_dim) or (F, col_embed_dim) column identity vectors; None = the
                seeded default ``column_embeddings(F)``. Permute it with the columns for exact equivariance.
            gaussian_fit: (mean (B or 1, E), cov (B or 1, E, E)) from ``fit_gaussian`` on the same key rows'
                known cells, to skip refitting (a sampler's known cells do not change between its calls).
            level_embed: (B or 1, F, >= C, level_embed_dim) level identity vectors; None = the seeded default.
            n_levels: C = max(2, n_classes.max()) when the caller knows it on the host (training reads it from
                the batch before it moves: ``training.host_facts``); None = read from n_classes, which makes the
                host wait for the device.
            withhold_closed_form: (B,) bool, tables whose unknown cells get no closed-form estimate (training
                only, ``LossConfig.p_withhold_closed_form``): numeric ones the column mean (0), categorical
                ones no level distribution, as if the fit said nothing.
            return_inputs: also return the numeric estimates (B, N, F, k) of the closed-form inputs the network
                was handed (``closed_form_inputs``, in that order), for inference to blend with its output.
            one_hot: ``gaussian_feature.one_hot_facts(is_cat, n_classes)`` when the caller has them on the host
                (``training.host_facts``), like n_levels; None = the Gaussian feature reads them from the device.
        Returns:
            (num_out (B, N, F), logits (B, N, F, C)) with C = max(2, n_classes.max()), then the inputs if
            return_inputs, then the context if return_context.
        """
        unknown = (~known).unsqueeze(-1).float()
        temb = self.time_embedding(t)
        n_levels = max(2, int(n_classes.max())) if n_levels is None else n_levels
        if level_embed is None:
            level_embed = self.level_embeddings(x.shape[2], n_levels, device=x.device)
        level_embed = level_embed[..., :n_levels, :]
        level_embed = level_embed if level_embed.dim() == 4 else level_embed.unsqueeze(0)  # (B or 1, F, C, E)
        seen = known if col_mask is None else known & col_mask[:, None, :]  # padding never enters the features
        gauss, probs, fit, neighbours = None, None, None, None
        if self.cfg.gaussian_feature:
            if context is not None:
                fit = context["gaussian"]
            elif gaussian_fit is not None:
                fit = gaussian_fit
            gauss, probs, fit = cell_estimates(
                x, seen, is_cat, n_classes, n_levels, fit, key_mask, self.cfg.gaussian_em_iters,
                self.cfg.categorical_feature, point_mass=self.cfg.point_mass_feature, one_hot=one_hot)
            if not self.cfg.categorical_feature:
                probs = None
            if withhold_closed_form is not None:
                off = withhold_closed_form[:, None, None] & ~seen
                gauss = torch.where(off, torch.zeros_like(gauss), gauss)
                if probs is not None:  # uniform over each column's own levels
                    levels = n_classes.clamp(min=1)[:, None, :, None]
                    uniform = (torch.arange(probs.shape[-1], device=x.device) < levels) / levels
                    probs = torch.where(off[..., None], uniform.to(probs.dtype), probs)
        if self.cfg.neighbour_feature:
            keys = None if context is None else context["rows"]
            neighbours = neighbour_estimates(x, seen, is_cat, n_classes, n_levels, keys, key_mask,
                                             kernel=self.cfg.neighbour_kernel)
        denoised = None
        if self.cfg.noisy_feature:
            noisy = noisy_cells(known, is_cat, col_mask)
            keys = None if context is None else (*context["rows"], context["noisy"])
            denoised = denoised_estimates(x, seen, noisy, is_cat, n_classes, self.alphas_cumprod, t, fit, keys,
                                          key_mask, self.cfg.categorical_feature)
        trees, tree_rows = None, None
        if self.cfg.tree_feature:
            tree_rows = (torch.where(seen, x, gauss), seen)  # numeric cells: known as they are, else the Gaussian's
            keys = None if context is None else context["trees"]
            estimates, fitted = feature_estimates(*tree_rows, is_cat, key_mask if context is None else None, keys)
            trees = (torch.where(fitted, estimates - gauss, 0.0), fitted.to(x.dtype))
        h = self.embed(x, known, is_cat, level_embed, gauss, probs, neighbours, denoised, trees)
        h = h + temb[:, None, None, :] * unknown
        if self.col_proj is not None:
            if col_embed is None:
                col_embed = self.column_embeddings(x.shape[2], device=x.device)
            h = h + self.col_proj(col_embed).unsqueeze(-3)  # (B or 1, 1, F, D)
        kvs = []
        for b, block in enumerate(self.blocks):
            h, kv = block(h, temb, unknown, key_mask, col_mask, None if context is None else context["kv"][b])
            kvs.append(kv)
        out = self.heads(h, n_classes, level_embed, probs, None if neighbours is None else neighbours[2],
                         denoised[0] if self.cfg.numeric_skip else None, None if trees is None else trees[0])
        if return_inputs:
            found = {"gaussian": gauss, "neighbours": None if neighbours is None else neighbours[0],
                     "sharp": None if neighbours is None else neighbours[1]}
            estimates = [found[name] for name in self.closed_form_inputs]  # their one order
            out = (*out, torch.stack(estimates, -1) if estimates else x.new_zeros(*x.shape, 0))
        if not return_context:
            return out
        noisy = noisy if self.cfg.noisy_feature else None
        return (*out, {"kv": kvs, "gaussian": fit, "rows": (x, seen), "noisy": noisy, "trees": tree_rows})

    @property
    def closed_form_inputs(self) -> tuple[str, ...]:
        """The closed-form estimates of numeric cells the network is handed, in ``forward(return_inputs=True)``'s
        order: the Gaussian conditional mean (``gaussian_feature``) and the smooth and the sharp nearest-rows
        estimates (``neighbour_feature``), those the config computes."""
        return tuple(name for name, on in (("gaussian", self.cfg.gaussian_feature),
                                           ("neighbours", self.cfg.neighbour_feature),
                                           ("sharp", self.cfg.neighbour_feature)) if on)

    def fit_gaussian(self, x, known, is_cat, n_classes, key_mask=None, col_mask=None):
        """The Gaussian fit of the input feature (see ``forward``'s ``gaussian_fit``) on the table expanded
        with one-hot level columns: mean (B, E), cov (B, E, E). Inference's: its EM runs until it converges
        (``converged_em``), where training's stops after ``gaussian_em_iters``."""
        seen = known if col_mask is None else known & col_mask[:, None, :]
        n_levels = max(2, int(n_classes.max()))
        em = converged_em(self.cfg.gaussian_em_iters)
        return cell_estimates(x, seen, is_cat, n_classes, n_levels, None, key_mask, em["em_iters"],
                              self.cfg.categorical_feature, point_mass=self.cfg.point_mass_feature,
                              em_tol=em["em_tol"])[2]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
