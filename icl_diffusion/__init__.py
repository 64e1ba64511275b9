"""icl-diffusion: zero-shot tabular imputation and prediction with a pretrained diffusion transformer."""

from .checkpoint import load_checkpoint, load_pretrained, save_checkpoint
from .diagnostics import plot_imputations, rubin_pool
from .diffusion import GaussianDiffusion
from .estimators import DiffusionClassifier, DiffusionImputer, DiffusionRegressor
from .model import Denoiser, DenoiserConfig
from .sampling import repaint_schedule, sample


def fine_tune(tables, **kwargs):
    """Fine-tune a checkpoint on your own tables; see ``icl_diffusion.finetune.fine_tune`` (imported on first
    use: it needs Lightning, which inference does not)."""
    from .finetune import fine_tune as run

    return run(tables, **kwargs)


__all__ = [
    "Denoiser",
    "DenoiserConfig",
    "DiffusionClassifier",
    "DiffusionImputer",
    "DiffusionRegressor",
    "GaussianDiffusion",
    "fine_tune",
    "load_checkpoint",
    "load_pretrained",
    "plot_imputations",
    "repaint_schedule",
    "rubin_pool",
    "sample",
    "save_checkpoint",
]
__version__ = "0.1.0"
