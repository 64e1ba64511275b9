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


def test_a_distillation_teacher_is_loaded_read_and_neither_trained_nor_saved(tmp_path):
    """``loss.distill_from``: the module reads the teacher checkpoint (one whose identity vectors differ: an error),
    its training step adds the distillation term (against its own weights: 0; against the shipped network:
    positive) and the teacher's weights stay out of the module's parameters and state dict (a run's checkpoint holds
    the student alone)."""
    from icl_diffusion.checkpoint import DEFAULT_CHECKPOINT, save_checkpoint
    from icl_diffusion.diffusion import GaussianDiffusion

    torch.manual_seed(0)
    net = {"d_model": 32, "n_blocks": 1, "n_heads": 2}
    plain = DiffusionLitModule(net, {}, val={"real": False})
    own = tmp_path / "own.safetensors"
    save_checkpoint(own, plain.model, GaussianDiffusion(), {})
    batch = sample_batch(PriorConfig(p_has_categorical=1.0), torch.Generator().manual_seed(0), batch_size=4,
                         n_rows=16, n_features=4, family="scm")
    logged = {}

    def record(name, value, **_):  # what the step would log
        logged[name] = value

    for teacher, positive in ((own, False), (DEFAULT_CHECKPOINT, True)):
        module = DiffusionLitModule(net, {}, loss={"distill_from": str(teacher), "distill_weight": 1.0, "p_uncond": 0},
                                    val={"real": False})
        module.model.load_state_dict(plain.model.state_dict())
        module.log = record
        module.training_step(batch, 0)
        assert (logged["train/distill"] > 1e-3) == positive and logged["train/distill"] > -1e-5
        assert set(module.state_dict()) == {f"model.{k}" for k in plain.model.state_dict()}
        assert sum(p.numel() for p in module.parameters()) == sum(p.numel() for p in plain.model.parameters())
    wider = DiffusionLitModule({**net, "col_embed_dim": 8}, {}, val={"real": False})
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, wider.model, GaussianDiffusion(), {})
    with pytest.raises(ValueError, match="col_embed_dim 8"):
        DiffusionLitModule(net, {}, loss={"distill_from": str(other), "distill_weight": 1.0}, val={"real": False})
