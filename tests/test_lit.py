"""DiffusionLitModule's training step, apart from a whole fit."""

from __future__ import annotations

import pytest
import torch

from icl_diffusion.lit import DiffusionLitModule
from priors import PriorConfig, sample_batch

pytestmark = pytest.mark.usefixtures("single_thread")


def test_a_batch_nothing_trained_reaches_steps_without_moving_anything():
    """optim.train_only on the categorical modules and a batch without categorical cells: the loss reaches no
    trained parameter. The step used to fail (backward of a loss without a graph; the batch stream decides
    when such a batch comes); it now moves nothing: no gradient, so AdamW skips every parameter."""
    torch.manual_seed(0)
    module = DiffusionLitModule({"d_model": 32, "n_blocks": 1, "n_heads": 2}, {},
                                optim={"train_only": ("level_q", "prob_skip")}, val={"real": False})
    opt = module.configure_optimizers()["optimizer"]
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    batch = sample_batch(PriorConfig(), torch.Generator().manual_seed(0), batch_size=4, n_rows=16,
                         n_features=3, family="gaussian")
    loss = module.training_step(batch, 0)
    loss.backward()
    opt.step()
    assert all(p.grad is None for p in module.model.parameters())
    assert all(torch.equal(p, before[n]) for n, p in module.model.named_parameters())
