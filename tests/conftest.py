"""Shared fixtures. Keep small: each fixture here serves several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from icl_diffusion import Denoiser, DenoiserConfig, GaussianDiffusion, save_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random-init 2-block d=32 model: cheap stand-in for the shipped checkpoint (answers are noise)."""
    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig(d_model=32, n_blocks=2, n_heads=2))
    return save_checkpoint(tmp_path_factory.mktemp("checkpoint") / "tiny.safetensors", model, GaussianDiffusion())


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread: tiny tables gain nothing from threads, and on a shared 2-core machine the
    threads' spin-waiting makes a 3 ms call take 500 ms. Restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
