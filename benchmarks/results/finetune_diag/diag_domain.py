"""Diagnostic (b): validation score vs held-out NRMSE along fine-tuning on a domain (no early stop).

    python benchmarks/results/finetune_diag/diag_domain.py '<JSON FineTuneConfig overrides>' TAG [DOMAIN (COUNT)]
"""
import sys, time, json
import numpy as np, torch
sys.path.insert(0, "benchmarks")
from categorical import numeric_image, score as bscore
from common import make_mask
from finetune import load_domain
from icl_diffusion import DiffusionImputer, finetune as ft
from icl_diffusion.checkpoint import Pretrained, load_pretrained
torch.set_num_threads(1)
overrides = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
tag = sys.argv[2] if len(sys.argv) > 2 else "dom"
domain = sys.argv[3] if len(sys.argv) > 3 else "COUNT"
tables, name, df = load_domain(domain)
z, mean, std = numeric_image(df)
rng = np.random.default_rng(0)
missing = make_mask(z, "mcar", 0.2, rng)
holey = df.mask(missing)
start = load_pretrained()
def heldout(model):
    was = model.training; model.eval()
    filled = DiffusionImputer(checkpoint=Pretrained(model, start.diffusion, start.info, start.sampler), random_state=0).fit_transform(holey)
    model.train(was)
    return bscore(filled, df, missing, mean, std)[1]
orig = ft.KeepBest.on_validation_end
def patched(self, trainer, pl_module):
    orig(self, trainer, pl_module)
    print(f"[{tag}] step {trainer.global_step} val {self.history[-1][1]:.4f} heldout nrmse {heldout(pl_module.model):.4f}", flush=True)
ft.KeepBest.on_validation_end = patched
print(f"[{tag}] step 0 heldout nrmse {heldout(start.model):.4f}", flush=True)
t = time.perf_counter()
cfg = dict(max_steps=300, patience=100, seed=0); cfg.update(overrides)
ft.fine_tune(tables, checkpoint=start, out=f"runs/finetune_diag/{tag}.safetensors", progress=False, **cfg)
print(f"[{tag}] {overrides} minutes {(time.perf_counter()-t)/60:.2f}", flush=True)
