"""From a standardized table tensor to imputations: key-row selection, context caching and query chunking.

Strategy for any table size (documented in the README):
- Key rows: the rows every cell may attend to across rows. If the table has more than ``max_context_rows``
  rows, a seeded random subset of that many rows is the key set (TabPFN-style context subsampling; rows
  with every cell known are preferred, since they carry the most information and can be cached).
- Every other row is a query row: it attends to the key rows only, so query rows are processed in chunks
  of ``chunk_rows`` against the key rows' cached keys, and one call costs O(rows x keys), linear in rows.
- When the key rows are fully known and the sampler keeps known cells clean (conditional, ddim), their
  encoding does not change between steps (time conditioning reaches unknown cells only) and is computed
  once per ``sample`` call.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .checkpoint import Pretrained
from .diffusion import MASK, GaussianDiffusion
from .model import Denoiser
from .sampling import SamplerConfig, count_calls, repaint_schedule, sample
from .scaling import CLIP


def choose_key_rows(known: torch.Tensor, max_context_rows: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of the key rows (sorted) of one table; known: (N, F). Complete rows first, then others."""
    N = known.shape[0]
    if N <= max_context_rows:
        return torch.arange(N)
    order = torch.randperm(N, generator=generator)
    complete = known.all(1)[order]
    order = torch.cat([order[complete], order[~complete]])  # stable: random within each group
    return order[:max_context_rows].sort().values


class TableDenoiser:
    """The sampler's denoiser callable for one table (repeated over the sample batch).

    Args:
        model, is_cat (F,), n_classes (F,): the network and the table's column types.
        key_rows: (K,) indices of key rows. chunk_rows: query rows per forward pass.
        cache_context: reuse the key rows' encoding across calls (valid when they are fully known and the
            sampler passes them clean).

    The Gaussian input feature's fit depends only on the key rows' known cells, which no sampler changes
    between calls: it is computed at the first call and reused by every later one (one object per table).
    """

    def __init__(self, model: Denoiser, is_cat, n_classes, key_rows, chunk_rows: int, cache_context: bool):
        self.model = model
        self.is_cat, self.n_classes = is_cat, n_classes
        self.key_rows = key_rows
        self.chunk_rows = chunk_rows
        self.cache_context = cache_context
        self._cache = None
        self._fit = None
        self.calls = 0

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, known: torch.Tensor):
        self.calls += 1
        S, N, Fe = x_t.shape
        is_cat = self.is_cat.expand(S, Fe)
        n_classes = self.n_classes.expand(S, Fe)
        kr = self.key_rows.to(x_t.device)
        if self.model.cfg.gaussian_feature and self._fit is None:
            self._fit = self.model.fit_gaussian(x_t[:1, kr], known[:1, kr], is_cat[:1], n_classes[:1])
        fit = self._fit
        if len(kr) == N:  # small table: one pass, every row a key row
            return self.model(x_t, t, known, is_cat, n_classes, gaussian_fit=fit)
        num = x_t.new_empty(S, N, Fe)
        logits = x_t.new_empty(S, N, Fe, max(2, int(self.n_classes.max())))
        if self.cache_context and self._cache is not None:
            ctx, (k_num, k_logits) = self._cache
            num[:, kr], logits[:, kr] = k_num.expand(S, -1, -1), k_logits.expand(S, -1, -1, -1)
        else:
            # The key rows are identical across samples when cached: encode one copy.
            n = 1 if self.cache_context else S
            k_num, k_logits, ctx = self.model(
                x_t[:n, kr], t[:n], known[:n, kr], is_cat[:n], n_classes[:n], return_context=True, gaussian_fit=fit
            )
            num[:, kr], logits[:, kr] = k_num.expand(S, -1, -1), k_logits.expand(S, -1, -1, -1)
            if self.cache_context:
                self._cache = (ctx, (k_num, k_logits))
        rest = torch.ones(N, dtype=torch.bool, device=x_t.device)
        rest[kr] = False
        rest = rest.nonzero().squeeze(1)
        for start in range(0, len(rest), self.chunk_rows):
            idx = rest[start : start + self.chunk_rows]
            q_num, q_logits = self.model(x_t[:, idx], t, known[:, idx], is_cat, n_classes, context=ctx)
            num[:, idx], logits[:, idx] = q_num, q_logits
        return num, logits


def point_input(x: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor) -> torch.Tensor:
    """The network input of the one-call point estimate: known cells as they are, unknown numeric cells at
    x_T's mean (0), unknown categorical cells masked. ``is_cat`` broadcasts against ``known`` (e.g. (1, F))."""
    cat = is_cat.expand_as(known)
    return torch.where(known, x, torch.where(cat, torch.full_like(x, MASK), torch.zeros_like(x)))


@torch.no_grad()
def one_call(model, diffusion, x, known, is_cat, n_classes, key_rows, chunk_rows: int = SamplerConfig.chunk_rows):
    """x0 estimate (N, F) and class logits (N, F, C) of every cell from one network call at t = T.

    This is ``sample(method="ddim", n_steps=1)`` with x_T at its mean: unknown numeric cells enter as 0
    instead of a noise draw. At t = T the input carries no signal (abar ~ 0); without the draw each query
    row's output depends only on itself and the key rows (deterministic, independent of the batch).
    x: (N, F) standardized, known: (N, F) bool, is_cat: (F,) bool, n_classes: (F,) long, key_rows: (K,).
    """
    chain = diffusion.respaced(1)
    cat = is_cat[None, :].expand_as(known)
    x_t = point_input(x, known, is_cat[None, :])
    t = torch.full((1,), chain.original_t(0), dtype=torch.long, device=x.device)
    den = TableDenoiser(model, is_cat[None], n_classes[None], key_rows, chunk_rows, cache_context=False)
    out, logits = den(x_t[None], t, known[None])  # (1, N, F), (1, N, F, C)
    x0, _ = chain.predict_x0_eps(out, x_t[None], 0)
    x0 = torch.where(cat, logits[0].argmax(-1).float(), x0[0])
    return torch.where(known, x, x0), logits[0]


@torch.no_grad()
def impute_standardized(
    model: Denoiser,
    diffusion: GaussianDiffusion,
    x: torch.Tensor,
    known: torch.Tensor,
    is_cat: torch.Tensor,
    n_classes: torch.Tensor,
    *,
    n_samples: int = 1,
    method: str = "ddim",
    n_steps: int = 1,
    jump_length: int = 1,
    jump_n_sample: int = 1,
    max_context_rows: int = SamplerConfig.max_context_rows,
    chunk_rows: int = SamplerConfig.chunk_rows,
    generator: torch.Generator | None = None,
    key_rows: torch.Tensor | None = None,
    variance_mix: float = SamplerConfig.variance_mix,
) -> torch.Tensor:
    """Imputations (n_samples, N, F) of one standardized table.

    x: (N, F) standardized values (codes for categorical columns; anything at unknown cells).
    known: (N, F) bool; is_cat: (F,) bool; n_classes: (F,) long. Known cells are returned bit for bit.
    """
    generator = generator or torch.Generator().manual_seed(0)
    model.eval()
    if key_rows is None:
        key_rows = choose_key_rows(known.cpu(), max_context_rows, generator)
    cache = method != "repaint" and bool(known[key_rows.to(known.device)].all())
    den = TableDenoiser(model, is_cat[None], n_classes[None], key_rows, chunk_rows, cache)
    x_rep = x[None].expand(n_samples, -1, -1).contiguous()
    k_rep = known[None].expand(n_samples, -1, -1)
    return sample(
        den, diffusion, x_rep, k_rep, method=method, n_steps=n_steps, jump_length=jump_length,
        jump_n_sample=jump_n_sample, generator=generator, is_cat=is_cat[None, None, :], clip=CLIP,
        variance_mix=variance_mix,
    )


def impute(
    pretrained: Pretrained, x: np.ndarray, known: np.ndarray, is_cat: np.ndarray, n_classes: np.ndarray, *,
    n_samples: int = 1, method: str = "ddim", n_steps: int = 1, jump_length: int = 1, jump_n_sample: int = 1,
    max_context_rows: int | None = None, chunk_rows: int | None = None, seed: int = 0,
    key_rows: np.ndarray | None = None, progress: bool = False, return_logits: bool = False,
    variance_mix: float | None = None,
):
    """Imputations (n_samples, N, F) float32 of an encoded table (``EncodedTable`` fields, numpy): the one
    inference engine behind the estimators, the CLI and the benchmarks.

    The one-call point estimate when ``method="ddim", n_steps=1, n_samples=1`` (then also the logits
    (N, F, C) if ``return_logits``), else ``impute_standardized``. ``max_context_rows``, ``chunk_rows`` and
    ``variance_mix`` left None take the checkpoint's tuned values (``pretrained.sampler``). Key rows: ``key_rows``, or a seeded choice
    of at most ``max_context_rows``. Rows that are complete and not key rows influence no other row (query
    rows attend to key rows only), so they are left out of the call. Numeric outputs are clamped once, here,
    to the network's input range; observed cells are returned bit for bit. ``progress``: a tqdm bar ticked
    by a forward hook on the network (one tick per forward pass).
    """
    model, diffusion, tuned = pretrained.model, pretrained.diffusion, pretrained.sampler
    max_context_rows = tuned.max_context_rows if max_context_rows is None else max_context_rows
    chunk_rows = tuned.chunk_rows if chunk_rows is None else chunk_rows
    variance_mix = tuned.variance_mix if variance_mix is None else variance_mix
    dev = next(model.parameters()).device
    N = x.shape[0]
    known_t = torch.as_tensor(known)
    cpu_gen = torch.Generator().manual_seed(seed)
    keys = choose_key_rows(known_t, max_context_rows, cpu_gen) if key_rows is None else torch.as_tensor(key_rows)
    rows = torch.as_tensor(~known).any(1)
    rows[keys] = True
    rows = rows.nonzero().squeeze(1)  # (R,) sorted: key rows + rows with something to impute
    pos = torch.full((N,), -1, dtype=torch.long)
    pos[rows] = torch.arange(len(rows))
    keys_sub = pos[keys]
    xs, ks = torch.as_tensor(x)[rows].to(dev), known_t[rows].to(dev)
    cat, ncl = torch.as_tensor(is_cat).to(dev), torch.as_tensor(n_classes).to(dev)
    n_query = len(rows) - len(keys_sub)
    chunks = math.ceil(n_query / chunk_rows) if n_query else 0
    point = method == "ddim" and n_steps == 1 and n_samples == 1
    if point:
        total = 1 + chunks
    else:
        chain_len = diffusion.respaced(n_steps).n_chain
        steps = (count_calls(repaint_schedule(chain_len, jump_length, jump_n_sample))[0]
                 if method == "repaint" or jump_n_sample > 1 else chain_len)
        cached = method != "repaint" and bool(ks[keys_sub.to(dev)].all())
        total = steps if not n_query else steps * chunks + (1 if cached else steps)
    bar = hook = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="imputing" if n_samples == 1 else f"{n_samples} imputations", unit="pass",
                   leave=False)
        hook = model.register_forward_hook(lambda *_: bar.update(1))
    try:
        if point:
            x0, logits = one_call(model, diffusion, xs, ks, cat, ncl, keys_sub, chunk_rows)
            out_sub = x0[None]
        else:
            gen = torch.Generator(device=dev).manual_seed(seed)
            out_sub = impute_standardized(
                model, diffusion, xs, ks, cat, ncl, n_samples=n_samples, method=method, n_steps=n_steps,
                jump_length=jump_length, jump_n_sample=jump_n_sample, max_context_rows=max_context_rows,
                chunk_rows=chunk_rows, generator=gen, key_rows=keys_sub, variance_mix=variance_mix,
            )
    finally:
        if bar is not None:
            hook.remove()
            bar.close()
    # No NaN or inf leaves: numeric cells are clamped to the network's input range.
    out_sub = torch.nan_to_num(out_sub.float(), nan=0.0).clamp(-CLIP, CLIP).cpu()
    out = torch.as_tensor(x)[None].repeat(n_samples, 1, 1)
    out[:, rows] = torch.where(torch.as_tensor(known)[rows], out[:, rows], out_sub)
    if return_logits:
        if not point:
            raise ValueError("logits come only with the one-call point estimate")
        full = torch.zeros(N, *logits.shape[1:])
        full[rows] = logits.float().cpu()
        return out.numpy(), full.numpy()
    return out.numpy()
