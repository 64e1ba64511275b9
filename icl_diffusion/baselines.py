"""Models with the Denoiser's interface that are not the trained network: what the quality tests and the
benchmarks measure it against.

- ``ClosedFormDenoiser``: the closed-form estimates alone (the Gaussian conditional mean of numeric cells and
  the one-hot Gaussian class probabilities of categorical cells, ``gaussian_feature.cell_estimates``), with
  no network. The trained model must beat it: otherwise the network adds nothing to its input feature.
- ``NeighbourDenoiser``: the nearest-rows estimates alone (``neighbour_feature.neighbour_estimates``, smooth
  bandwidth), no network: the nonlinear input feature's own quality.
- ``NoisyGaussianDenoiser``: the noisy-table Gaussian denoiser alone (``noisy_feature.denoised_estimates``'s
  posterior mean for numeric cells, the closed-form class probabilities for categorical ones), no network: the
  exact denoiser of a Gaussian fitted to the table, so RePaint with it draws from that Gaussian's conditional.
- ``BlindDenoiser``: the trained network with every observed cell hidden (each cell is predicted from nothing
  but the table's shape): a model that ignores its inputs. A quality test that this model passes tests nothing.
- ``random_weights``: the same architecture, freshly initialized.
- ``row_attention_off``: the trained network with attention across rows removed (no cell sees another row;
  only the closed-form estimates carry the other rows).

Each goes through the same estimators and inference engine as the shipped model (``Pretrained(model, ...)``
is accepted wherever a checkpoint is).
"""

from __future__ import annotations

import torch

from .checkpoint import Pretrained
from .diffusion import schedule_alphas_cumprod
from .gaussian_feature import cell_estimates
from .inference import point_input
from .model import Denoiser
from .neighbour_feature import neighbour_estimates
from .noisy_feature import denoised_estimates, noisy_cells


def _log_probabilities(probs: torch.Tensor, n_classes: torch.Tensor) -> torch.Tensor:
    """Level probabilities (B, N, F, C) as logits; levels beyond a column's count get -1e4, as the network's."""
    valid = torch.arange(probs.shape[-1], device=probs.device) < n_classes.clamp(min=1)[:, None, :, None]
    return probs.clamp(min=1e-4).log().masked_fill(~valid, -1e4)


def _outputs(x: torch.Tensor, out: tuple, return_inputs: bool, context: dict | None) -> tuple:
    """A closed-form denoiser's ``forward`` return: its output, then (``return_inputs``) no input estimates (it is
    handed none, ``closed_form_inputs``), then the context if given."""
    out = (*out, x.new_zeros(*x.shape, 0)) if return_inputs else out
    return out if context is None else (*out, context)


class ClosedFormDenoiser(Denoiser):
    """Outputs the closed-form estimates as its x0 prediction (numeric) and log-probabilities (categorical).

    Only for x0-prediction diffusions (the shipped one): its numeric output is read as x0 at every step.
    """

    closed_form_inputs = ()  # its output is its own input: nothing to blend it with

    def forward(self, x, t, known, is_cat, n_classes, key_mask=None, col_mask=None, context=None,
                return_context=False, col_embed=None, gaussian_fit=None, level_embed=None, return_inputs=False):
        seen = known if col_mask is None else known & col_mask[:, None, :]
        fit = context["gaussian"] if context is not None else gaussian_fit
        n_levels = max(2, int(n_classes.max()))
        gauss, probs, fit = cell_estimates(x, seen, is_cat, n_classes, n_levels, fit, key_mask,
                                           self.cfg.gaussian_em_iters, categorical=True)
        out = (gauss, _log_probabilities(probs, n_classes))
        return _outputs(x, out, return_inputs, {"kv": [None] * len(self.blocks), "gaussian": fit} if return_context else None)


class NeighbourDenoiser(Denoiser):
    """Outputs the smooth nearest-rows estimates (``sharp``: the sharp ones) as its x0 prediction and the smooth
    ones' log-probabilities as logits (x0-prediction diffusions only, like ``ClosedFormDenoiser``)."""

    closed_form_inputs = ()
    sharp = False

    def forward(self, x, t, known, is_cat, n_classes, key_mask=None, col_mask=None, context=None,
                return_context=False, col_embed=None, gaussian_fit=None, level_embed=None, return_inputs=False):
        seen = known if col_mask is None else known & col_mask[:, None, :]
        n_levels = max(2, int(n_classes.max()))
        keys = None if context is None else context["rows"]
        smooth, sharp, probs, _ = neighbour_estimates(x, seen, is_cat, n_classes, n_levels, keys, key_mask,
                                                      kernel=self.cfg.neighbour_kernel)
        out = (sharp if self.sharp else smooth, _log_probabilities(probs, n_classes))
        return _outputs(x, out, return_inputs, {"kv": [None] * len(self.blocks), "rows": (x, seen)} if return_context else None)

    def fit_gaussian(self, x, known, is_cat, n_classes, key_mask=None, col_mask=None):
        return None


class SharpNeighbourDenoiser(NeighbourDenoiser):
    """``NeighbourDenoiser`` at the sharp bandwidth (the nearest row's distance: near-duplicate rows)."""

    sharp = True


class NoisyGaussianDenoiser(Denoiser):
    """Outputs the noisy-table Gaussian denoiser's posterior mean as its x0 prediction and the closed-form
    log-probabilities as logits (x0-prediction diffusions only, like ``ClosedFormDenoiser``)."""

    closed_form_inputs = ()

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        if not cfg.noisy_feature:  # else the network's own buffer is there
            self.register_buffer("alphas_cumprod", schedule_alphas_cumprod(cfg.num_steps, cfg.schedule).float(),
                                 persistent=False)

    def forward(self, x, t, known, is_cat, n_classes, key_mask=None, col_mask=None, context=None,
                return_context=False, col_embed=None, gaussian_fit=None, level_embed=None, return_inputs=False):
        seen = known if col_mask is None else known & col_mask[:, None, :]
        fit = context["gaussian"] if context is not None else gaussian_fit
        n_levels = max(2, int(n_classes.max()))
        _, probs, fit = cell_estimates(x, seen, is_cat, n_classes, n_levels, fit, key_mask,
                                       self.cfg.gaussian_em_iters, categorical=True)
        noisy = noisy_cells(known, is_cat, col_mask)
        keys = None if context is None else (*context["rows"], context["noisy"])
        mean, _ = denoised_estimates(x, seen, noisy, is_cat, n_classes, self.alphas_cumprod, t, fit, keys, key_mask)
        out = (mean, _log_probabilities(probs, n_classes))
        context = {"kv": [None] * len(self.blocks), "gaussian": fit, "rows": (x, seen), "noisy": noisy}
        return _outputs(x, out, return_inputs, context if return_context else None)


class BlindDenoiser(Denoiser):
    """The network, shown no observed cell: every cell enters as unknown (numeric 0, categorical masked)."""

    def forward(self, x, t, known, is_cat, n_classes, **kwargs):
        kwargs.pop("gaussian_fit", None)  # a fit of the observed cells would leak them
        if kwargs.get("context") is not None:
            kwargs["context"] = {**kwargs["context"], "gaussian": None}
        hidden = torch.zeros_like(known)
        x_in = point_input(x, hidden, is_cat[:, None, :])
        return super().forward(x_in, t, hidden, is_cat, n_classes, **kwargs)

    def fit_gaussian(self, x, known, is_cat, n_classes, key_mask=None, col_mask=None):
        return super().fit_gaussian(x, torch.zeros_like(known), is_cat, n_classes, key_mask, col_mask)


def _with_model(pretrained: Pretrained, cls: type[Denoiser], copy_weights: bool) -> Pretrained:
    model = cls(pretrained.model.cfg)
    if copy_weights:
        model.load_state_dict(pretrained.model.state_dict())
    return Pretrained(model.eval(), pretrained.diffusion, {**pretrained.info, "baseline": cls.__name__},
                      pretrained.sampler)


def closed_form(pretrained: Pretrained) -> Pretrained:
    """The closed-form estimates of ``pretrained``'s config alone, no network."""
    if pretrained.diffusion.prediction != "x0":
        raise ValueError("the closed-form baseline needs an x0-prediction diffusion")
    return _with_model(pretrained, ClosedFormDenoiser, copy_weights=False)


def nearest_rows(pretrained: Pretrained) -> Pretrained:
    """The nearest-rows estimates alone, no network."""
    if pretrained.diffusion.prediction != "x0":
        raise ValueError("the nearest-rows baseline needs an x0-prediction diffusion")
    return _with_model(pretrained, NeighbourDenoiser, copy_weights=False)


def noisy_gaussian(pretrained: Pretrained) -> Pretrained:
    """The noisy-table Gaussian denoiser alone, no network."""
    if pretrained.diffusion.prediction != "x0":
        raise ValueError("the noisy-Gaussian baseline needs an x0-prediction diffusion")
    return _with_model(pretrained, NoisyGaussianDenoiser, copy_weights=False)


def blind(pretrained: Pretrained) -> Pretrained:
    """``pretrained``'s network with every observed cell hidden."""
    return _with_model(pretrained, BlindDenoiser, copy_weights=True)


def random_weights(pretrained: Pretrained, seed: int = 0) -> Pretrained:
    """A freshly initialized network of ``pretrained``'s architecture."""
    torch.manual_seed(seed)
    return _with_model(pretrained, Denoiser, copy_weights=False)


class _NoRowAttention(torch.nn.Module):
    """Stands in for a block's row attention and contributes nothing."""

    def keys(self, h, key_mask):
        return None

    def forward(self, h, kv):
        return torch.zeros_like(h)


def row_attention_off(pretrained: Pretrained) -> Pretrained:
    """``pretrained``'s network without attention across rows."""
    out = _with_model(pretrained, Denoiser, copy_weights=True)
    for block in out.model.blocks:
        block.row_attn = _NoRowAttention()
    return out


WRONG_MODELS = {"closed_form": closed_form, "nearest_rows": nearest_rows, "noisy_gaussian": noisy_gaussian, "blind": blind,
                "random_weights": random_weights, "row_attention_off": row_attention_off}
