"""Inference checkpoints: config + weights in one safetensors file, never an unpickled object.

The file's safetensors metadata holds ``format`` (a tag checked on load), ``config`` (JSON: the model's
``DenoiserConfig``, the diffusion's settings, the tuned inference settings ``SamplerConfig`` and free-form
``info`` such as tables seen) and ``sha256`` of the weights, so a wrong or corrupted file fails with a clear message instead of a silent wrong answer.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .diffusion import GaussianDiffusion
from .model import Denoiser, DenoiserConfig
from .resources import shipped_dir
from .sampling import SamplerConfig

FORMAT = "icl-diffusion/1"
ENV_VAR = "ICL_DIFFUSION_CHECKPOINT"
DEFAULT_CHECKPOINT = shipped_dir("checkpoints") / "icl_diffusion_small.safetensors"


@dataclass
class Pretrained:
    """A loaded model: the network (eval mode), its diffusion, the metadata stored with it and its tuned
    inference settings (the defaults when the file predates them)."""

    model: Denoiser
    diffusion: GaussianDiffusion
    info: dict = field(default_factory=dict)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)


def _digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # 0-dim too
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike,
    model: Denoiser,
    diffusion: GaussianDiffusion,
    info: dict | None = None,
    dtype: torch.dtype = torch.float16,
    sampler: SamplerConfig | None = None,
) -> Path:
    """Write model + diffusion + sampler settings to ``path`` (weights cast to ``dtype`` to keep the file
    small); ``sampler`` None stores the defaults."""
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in model.state_dict().items()}
    config = {
        "model": model.cfg.to_dict(),
        "diffusion": {"num_steps": diffusion.num_steps, "schedule": diffusion.schedule,
                      "prediction": diffusion.prediction},
        "info": info or {},
        "sampler": (sampler or SamplerConfig()).to_dict(),
    }
    meta = {"format": FORMAT, "config": json.dumps(config), "sha256": _digest(state)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)
    return path


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", strict: bool = True) -> Pretrained:
    """Load a file written by ``save_checkpoint``; weights are returned in float32.

    ``strict=False`` (continuing training from an older architecture) loads every stored tensor the current
    model has with the same shape; the names of fresh (randomly initialized) and dropped tensors are
    recorded in ``info["fresh_parameters"]`` and ``info["dropped_parameters"]``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)
    except Exception as err:  # safetensors raises its own error types for non-safetensors files
        raise ValueError(f"{path} is not an icl-diffusion checkpoint (not a safetensors file: {err})") from err
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not an icl-diffusion checkpoint (format tag {meta.get('format')!r})")
    if meta.get("sha256") != _digest(state):
        raise ValueError(f"{path}: weights do not match their recorded checksum (corrupted file?)")
    config = json.loads(meta["config"])
    model = Denoiser(DenoiserConfig(**config["model"]))
    info = config.get("info", {})
    if strict:
        own = set(model.state_dict())
        if own != set(state):
            raise ValueError(
                f"{path} was written by another architecture of icl-diffusion (missing {sorted(own - set(state))[:4]}, "
                f"unknown {sorted(set(state) - own)[:4]}): continue training from it with init_from=PATH, which "
                "keeps every weight that still fits")
        model.load_state_dict({k: v.float() for k, v in state.items()})
    else:
        own = model.state_dict()
        usable = {k: v.float() for k, v in state.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(usable, strict=False)
        info = {**info, "fresh_parameters": sorted(set(own) - set(usable)),
                "dropped_parameters": sorted(set(state) - set(usable))}
    model.to(device).eval()
    sampler = SamplerConfig(**config.get("sampler", {}))
    return Pretrained(model, GaussianDiffusion(**config["diffusion"]), info, sampler)


def load_pretrained(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Pretrained:
    """The shipped checkpoint, or ``path``, or the file named by $ICL_DIFFUSION_CHECKPOINT."""
    path = path or os.environ.get(ENV_VAR) or DEFAULT_CHECKPOINT
    return load_checkpoint(path, device)
