"""Synthetic tables for pretraining: random SCMs and linear-Gaussian tables with masks of known cells.

Depends on numpy / torch only (never on ``icl_diffusion``). Everything is generated in torch, batched
over tables, on the device asked for.
"""

from .batch import default_batch_size, sample_batch
from .config import ACTIVATIONS, FAMILIES, MASK_KINDS, PriorConfig
from .dataset import PriorDataset, fixed_batches, stream_generator
from .gaussian import conditional_gaussian
from .masks import sample_mask

__all__ = [
    "ACTIVATIONS",
    "FAMILIES",
    "MASK_KINDS",
    "PriorConfig",
    "PriorDataset",
    "conditional_gaussian",
    "default_batch_size",
    "fixed_batches",
    "sample_batch",
    "sample_mask",
    "stream_generator",
]
