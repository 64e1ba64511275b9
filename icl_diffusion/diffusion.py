"""Gaussian diffusion for numeric cells and absorbing-state (masked) diffusion for categorical cells.

Both run on one clock: step t in 0..num_steps-1 has signal level ``alphas_cumprod[t]``. A numeric cell is
noised as ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` (Ho et al. 2020, eq. 4); a categorical cell is
replaced by the absorbing MASK state with probability ``1 - abar_t`` (Austin et al. 2021, D3PM absorbing),
so at t = T-1 (abar ~ 0) every unknown cell is pure noise / masked and the model's x0 prediction is the
posterior mean of the unknown cells given the known ones: the one-call point estimate.

Names follow improved-diffusion: ``q_sample``, ``q_posterior_mean_variance``, ``p_mean_variance``.
Respacing (``respaced``) keeps the network's t in the original 0..num_steps-1 index.
"""

from __future__ import annotations

import math

import torch

MASK = -1.0  # value of a categorical cell in the absorbing (masked) state


def _cosine_alphas_cumprod(num_steps: int, s: float = 0.008) -> torch.Tensor:
    # Nichol & Dhariwal 2021, eq. 17; betas clipped at 0.999 as in their code.
    steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0)


def _linear_alphas_cumprod(num_steps: int) -> torch.Tensor:
    # Ho et al. 2020 used 1e-4..0.02 over 1000 steps; scale so other step counts keep the same end point.
    scale = 1000 / num_steps
    betas = torch.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=torch.float64)
    # At <= 20 steps the scaled end point reaches 1 (alphas <= 0, NaN noise): clip as the cosine does.
    return torch.cumprod(1 - betas.clamp(max=0.999), 0)


def schedule_alphas_cumprod(num_steps: int, schedule: str) -> torch.Tensor:
    """alphas_cumprod (T,) float64 of a schedule over the original steps (what ``GaussianDiffusion`` uses)."""
    if schedule not in ("cosine", "linear"):
        raise ValueError(f"schedule must be 'cosine' or 'linear', got {schedule!r}")
    return _cosine_alphas_cumprod(num_steps) if schedule == "cosine" else _linear_alphas_cumprod(num_steps)


class GaussianDiffusion:
    """Noise schedule and the q/p math of the diffusion (no network).

    Args:
        num_steps: length T of the original chain.
        schedule: "cosine" or "linear".
        prediction: what the network outputs for numeric cells: "eps", "v" or "x0".
        timesteps: the original step indices this (possibly respaced) chain visits, ascending; None = all.
    """

    def __init__(
        self,
        num_steps: int = 1000,
        schedule: str = "cosine",
        prediction: str = "x0",
        timesteps: list[int] | None = None,
    ) -> None:
        if prediction not in ("eps", "v", "x0"):
            raise ValueError(f"prediction must be 'eps', 'v' or 'x0', got {prediction!r}")
        self.num_steps = num_steps
        self.schedule = schedule
        self.prediction = prediction
        full = schedule_alphas_cumprod(num_steps, schedule)
        self.alphas_cumprod = full.float()  # (T,) over the ORIGINAL steps, as DESIGN.md's contract says
        self.timesteps = list(range(num_steps)) if timesteps is None else sorted(timesteps)
        # The chain actually walked: abar at the visited steps; betas re-derived so the marginals match
        # (improved-diffusion's respace.py).
        abar = full[self.timesteps]
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        betas = 1 - abar / abar_prev
        self._abar = abar
        self._abar_prev = abar_prev
        self._betas = betas
        # q(x_{i-1} | x_i, x0) coefficients, eq. 7 of Ho et al.
        self._post_var = betas * (1 - abar_prev) / (1 - abar)
        self._post_c0 = betas * abar_prev.sqrt() / (1 - abar)
        self._post_ct = (1 - abar_prev) * (1 - betas).sqrt() / (1 - abar)
        # Float32 copies of the per-step coefficients on each device the training step has used: indexing a
        # host tensor with device timesteps would copy it there (a blocking transfer) at every call.
        self._on_device: dict[tuple[str, torch.device], torch.Tensor] = {}

    def respaced(self, n_steps: int) -> GaussianDiffusion:
        """The same model walked in ``n_steps`` evenly spaced steps (ends at original t = T-1)."""
        n_steps = max(1, min(n_steps, self.num_steps))
        # linspace(0, T-1, 1) is [0]: a one-step chain must still start from pure noise at T-1.
        ts = [self.num_steps - 1] if n_steps == 1 else (
            torch.linspace(0, self.num_steps - 1, n_steps).round().long().unique().tolist())
        return GaussianDiffusion(self.num_steps, self.schedule, self.prediction, ts)

    @property
    def n_chain(self) -> int:
        """Number of steps in the (respaced) chain."""
        return len(self.timesteps)

    def original_t(self, i: int) -> int:
        """Original step index of chain position ``i``: what the network sees."""
        return self.timesteps[i]

    def _at(self, name: str, i: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        # Gather the per-step coefficient self.<name> at i and broadcast over the cell dims of `like` (B, ...).
        if isinstance(i, int):
            value = float(getattr(self, name)[i])
            return torch.full((like.shape[0],) + (1,) * (like.dim() - 1), value, device=like.device)
        key = (name, like.device)
        if key not in self._on_device:
            self._on_device[key] = getattr(self, name).to(like.device, torch.float32)
        return self._on_device[key][i].view(-1, *([1] * (like.dim() - 1)))

    # --- forward process -------------------------------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, i: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
        """Noise x0 to chain position i: sqrt(abar) x0 + sqrt(1-abar) eps. Shapes (B, ...)."""
        abar = self._at("_abar", i, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def q_sample_categorical(
        self, codes: torch.Tensor, i: torch.Tensor | int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Absorbing-state forward process: each code is MASKed with probability 1 - abar_i."""
        abar = self._at("_abar", i, codes)
        u = torch.rand(codes.shape, generator=generator, device=codes.device)
        return torch.where(u < 1 - abar, torch.full_like(codes, MASK), codes)

    def q_step_up(
        self, x: torch.Tensor, i: int, noise: torch.Tensor
    ) -> torch.Tensor:
        """One forward step i-1 -> i: sqrt(1-beta_i) x + sqrt(beta_i) eps (RePaint's jump back)."""
        beta = float(self._betas[i])
        return math.sqrt(1 - beta) * x + math.sqrt(beta) * noise

    def q_step_up_categorical(
        self, codes: torch.Tensor, i: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Forward step i-1 -> i for categorical cells: an unmasked code is re-masked w.p. beta_i."""
        beta = float(self._betas[i])
        u = torch.rand(codes.shape, generator=generator, device=codes.device)
        return torch.where(u < beta, torch.full_like(codes, MASK), codes)

    # --- parameterizations -----------------------------------------------------------------------------
    def predict_x0_eps(
        self, model_out: torch.Tensor, x_t: torch.Tensor, i: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0_hat, eps_hat) from the network output in this diffusion's parameterization."""
        abar = self._at("_abar", i, x_t)
        a, s = abar.sqrt(), (1 - abar).sqrt()
        if self.prediction == "x0":
            x0 = model_out
            eps = (x_t - a * x0) / s.clamp(min=1e-4)
        elif self.prediction == "eps":
            eps = model_out
            x0 = (x_t - s * eps) / a.clamp(min=1e-8)  # cosine sqrt(abar_{T-1}) ~ 5e-5
        else:  # v = a eps - s x0 (Salimans & Ho 2022)
            x0 = a * x_t - s * model_out
            eps = s * x_t + a * model_out
        return x0, eps

    def target(self, x0: torch.Tensor, noise: torch.Tensor, i: torch.Tensor | int) -> torch.Tensor:
        """Regression target of the network for numeric cells."""
        if self.prediction == "x0":
            return x0
        if self.prediction == "eps":
            return noise
        abar = self._at("_abar", i, x0)
        return abar.sqrt() * noise - (1 - abar).sqrt() * x0

    # --- reverse process -------------------------------------------------------------------------------
    def q_posterior_mean_variance(
        self, x0: torch.Tensor, x_t: torch.Tensor, i: int
    ) -> tuple[torch.Tensor, float]:
        """Mean and variance of q(x_{i-1} | x_i, x0) (Ho et al. eq. 7)."""
        mean = float(self._post_c0[i]) * x0 + float(self._post_ct[i]) * x_t
        return mean, float(self._post_var[i])

    def p_mean_variance(
        self, model_out: torch.Tensor, x_t: torch.Tensor, i: int, clip: float | None = None,
        variance_mix: float = 0.0,
    ) -> tuple[torch.Tensor, float, torch.Tensor]:
        """Mean and variance of p(x_{i-1} | x_i) and the x0 estimate behind it.

        The variance interpolates in log space between the posterior variance beta_tilde (``variance_mix``
        0: right when x0 is known exactly) and beta (1: right when x0 ~ N(0, I)), Nichol & Dhariwal 2021's
        parameterization with a fixed mix. On a short chain the x0 estimate is uncertain and 0 gives draws
        that are too alike.
        """
        x0, _ = self.predict_x0_eps(model_out, x_t, i)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        mean, var = self.q_posterior_mean_variance(x0, x_t, i)
        if variance_mix and var > 0:
            var = math.exp((1 - variance_mix) * math.log(var) + variance_mix * math.log(float(self._betas[i])))
        return mean, var, x0

    def unmask_probability(self, i: int) -> float:
        """Probability that a masked categorical cell at position i is revealed at i-1. Into the original t = 0
        every cell is revealed: one left masked there (probability 1 - abar_0, ~1e-4) would make the sampler's
        last step call the network on every draw (``sampling.sample``) to reveal it, for nothing measurable
        (session 20: at 2 steps that call was most of the draws' time on tables with categorical cells)."""
        abar, abar_prev = float(self._abar[i]), float(self._abar_prev[i])
        return 1.0 if i == 0 or self.original_t(i - 1) == 0 else (abar_prev - abar) / max(1 - abar, 1e-12)

    def ddim_step(self, x0: torch.Tensor, eps: torch.Tensor, i: int) -> torch.Tensor:
        """Deterministic DDIM update i -> i-1 (Song et al. 2021, eq. 12 with eta = 0)."""
        abar_prev = float(self._abar_prev[i])
        return math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev) * eps
