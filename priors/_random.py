"""Seeded random draws for the prior: host scalars for structure, device tensors for values.

Python-level decisions (table size, number of layers, mask kind) are drawn on a CPU generator so they
cost no device synchronisation; every tensor is drawn on a generator living on the target device, so a
batch is generated where it is used. Both are derived deterministically from the one generator the
caller passes: same generator state -> same batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor


class Rng:
    """A pair of generators (host, device) plus the draws the prior needs."""

    def __init__(self, generator: torch.Generator, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        gen_device = torch.device(generator.device)
        if gen_device.type == "cpu":
            self.host = generator
        else:  # a device generator was passed: derive the host one from it
            seed = int(torch.randint(0, 2**62, (), generator=generator, device=gen_device).item())
            self.host = torch.Generator().manual_seed(seed)
        if gen_device.type == self.device.type:
            self.dev = generator
        else:
            seed = int(torch.randint(0, 2**62, (), generator=self.host).item())
            self.dev = torch.Generator(device=self.device).manual_seed(seed)

    # ---- host scalars ----
    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=self.host))

    def log_uniform(self, lo: float, hi: float) -> float:
        return math.exp(self.uniform(math.log(lo), math.log(hi)))

    def int_uniform(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi] (inclusive)."""
        return int(torch.randint(int(lo), int(hi) + 1, (), generator=self.host))

    def int_log_uniform(self, lo: int, hi: int) -> int:
        """Integer in [lo, hi] (inclusive) whose log is uniform."""
        value = math.exp(self.uniform(math.log(lo), math.log(hi + 1)))
        return min(int(hi), max(int(lo), int(value)))

    def bernoulli(self, p: float) -> bool:
        return float(torch.rand((), generator=self.host)) < p

    def choice(self, weights: Mapping[str, float]) -> str:
        names = list(weights)
        probs = torch.tensor([float(weights[n]) for n in names], dtype=torch.float64)
        return names[int(torch.multinomial(probs, 1, generator=self.host))]

    def categorical_host(self, n: int, weights: Mapping[str, float], names: Sequence[str]) -> Tensor:
        """``n`` indices into ``names`` drawn on the host (CPU long tensor), for per-table choices that
        decide which computations a batch needs at all."""
        if n <= 0:
            return torch.zeros(0, dtype=torch.long)
        probs = torch.tensor([float(weights.get(name, 0.0)) for name in names], dtype=torch.float64)
        return torch.multinomial(probs, n, replacement=True, generator=self.host)

    # ---- device tensors ----
    def rand(self, *shape: int) -> Tensor:
        return torch.rand(shape, generator=self.dev, device=self.device)

    def randn(self, *shape: int) -> Tensor:
        return torch.randn(shape, generator=self.dev, device=self.device)

    def exponential(self, *shape: int) -> Tensor:
        return torch.empty(shape, device=self.device).exponential_(generator=self.dev)

    def uniform_t(self, shape: Sequence[int], lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * self.rand(*shape)

    def log_uniform_t(self, shape: Sequence[int], lo: float, hi: float) -> Tensor:
        return torch.exp(self.uniform_t(shape, math.log(lo), math.log(hi)))

    def bernoulli_t(self, shape: Sequence[int], p: float | Tensor) -> Tensor:
        return self.rand(*shape) < p

    def randint_t(self, shape: Sequence[int], lo: int | Tensor, hi: int | Tensor) -> Tensor:
        """Integers in [lo, hi] (inclusive); lo / hi may be tensors broadcastable to ``shape``."""
        span = torch.as_tensor(hi, device=self.device) - lo + 1
        out = lo + (self.rand(*shape) * span).long()
        return torch.minimum(out, torch.as_tensor(hi, device=self.device))  # rand()*span may round to span

    def categorical_t(
        self, shape: Sequence[int], weights: Mapping[str, float], names: Sequence[str]
    ) -> Tensor:
        """Indices into ``names`` (long, ``shape``) drawn with the given weights (missing names: 0)."""
        probs = torch.tensor([float(weights.get(n, 0.0)) for n in names], device=self.device)
        cdf = torch.cumsum(probs / probs.sum(), 0)
        idx = torch.searchsorted(cdf, self.rand(*shape).reshape(-1).contiguous(), right=True)
        return idx.clamp_(max=len(names) - 1).reshape(tuple(shape))

    def permutation_t(self, *shape: int) -> Tensor:
        """Independent random permutations of range(shape[-1]), batched over the leading dims."""
        return torch.argsort(self.rand(*shape), dim=-1)


def standardize(x: Tensor, dim: int = 1, eps: float = 1e-6) -> Tensor:
    """Zero mean, unit std along ``dim`` (constant slices become all zeros instead of NaN)."""
    mean = x.mean(dim, keepdim=True)
    centred = x - mean
    std = centred.square().mean(dim, keepdim=True).sqrt()
    return centred / std.clamp_min(eps)
