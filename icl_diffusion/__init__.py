"""icl-diffusion: zero-shot tabular imputation and prediction with a pretrained diffusion transformer."""

from .checkpoint import load_checkpoint, load_pretrained, save_checkpoint
from .diffusion import GaussianDiffusion
from .estimators import DiffusionClassifier, DiffusionImputer, DiffusionRegressor
from .model import Denoiser, DenoiserConfig
from .sampling import repaint_schedule, sample

__all__ = [
    "Denoiser",
    "DenoiserConfig",
    "DiffusionClassifier",
    "DiffusionImputer",
    "DiffusionRegressor",
    "GaussianDiffusion",
    "load_checkpoint",
    "load_pretrained",
    "repaint_schedule",
    "sample",
    "save_checkpoint",
]
__version__ = "0.1.0"
