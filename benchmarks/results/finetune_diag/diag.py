"""Diagnostic: validation score vs the benchmark's held-out score along fine-tuning (NMES1988)."""
import sys, time, json
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "benchmarks")
from categorical import load_table, numeric_image, score as bscore
from common import make_mask
from icl_diffusion import DiffusionImputer, finetune as ft
from icl_diffusion.checkpoint import Pretrained, load_pretrained

torch.set_num_threads(1)
overrides = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
tag = sys.argv[2] if len(sys.argv) > 2 else "run"
df, _ = load_table("nmes1988", max_rows=None)
z, mean, std = numeric_image(df)
rng = np.random.default_rng(0)
test = rng.random(len(df)) < 0.3
missing = np.zeros(df.shape, dtype=bool)
missing[test] = make_mask(z[test], "mcar", 0.2, rng)
holey = df.mask(missing)
start = load_pretrained()

def heldout(model):
    was = model.training; model.eval()
    p = Pretrained(model, start.diffusion, start.info, start.sampler)
    filled = DiffusionImputer(checkpoint=p, random_state=0).fit_transform(holey)
    model.train(was)
    return bscore(filled, df, missing, mean, std)

log = []
orig = ft.KeepBest.on_validation_end
def patched(self, trainer, pl_module):
    orig(self, trainer, pl_module)
    acc, err = heldout(pl_module.model)
    log.append((trainer.global_step, self.history[-1][1], acc, err))
    print(f"[{tag}] step {trainer.global_step} val {self.history[-1][1]:.4f} heldout acc {acc:.3f} nrmse {err:.4f}", flush=True)
ft.KeepBest.on_validation_end = patched
acc0, err0 = heldout(start.model)
print(f"[{tag}] step 0 heldout acc {acc0:.3f} nrmse {err0:.4f}", flush=True)
t = time.perf_counter()
cfg = dict(max_steps=400, patience=100, seed=0)
cfg.update(overrides)
ft.fine_tune(df[~test].reset_index(drop=True), checkpoint=start, out=f"runs/finetune_diag/{tag}.safetensors", progress=False, **cfg)
print(f"[{tag}] {overrides} minutes {(time.perf_counter()-t)/60:.2f}", flush=True)
