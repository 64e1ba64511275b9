"""Validation metrics of inference checkpoints on a training experiment's validation set (the tables its run
validates on, so the numbers sit on that run's curve). Run from the repository root:

    python benchmarks/results/val_checkpoint.py cpu_recipe_phase14 checkpoints/icl_diffusion_small.safetensors [MORE...]
"""
import sys

import torch

from icl_diffusion.checkpoint import load_checkpoint
from icl_diffusion.evaluation import evaluate
from icl_diffusion.lit import DiffusionLitModule
from icl_diffusion.train import _plain, compose

torch.set_num_threads(1)
cfg = compose([f"experiment={sys.argv[1]}"])
for path in sys.argv[2:]:
    p = load_checkpoint(path, strict=False)
    diffusion = {"num_steps": p.diffusion.num_steps, "schedule": p.diffusion.schedule,
                 "prediction": p.diffusion.prediction}
    module = DiffusionLitModule(model=p.model.cfg.to_dict(), diffusion=diffusion, loss=_plain(cfg.loss),
                                optim=_plain(cfg.optim), val=_plain(cfg.val), prior=_plain(cfg.prior), seed=0)
    metrics = evaluate(p.model, p.diffusion, module.validation_batches())
    print(path, {k: round(float(v), 4) for k, v in metrics.items()}, flush=True)
