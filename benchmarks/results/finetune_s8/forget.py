"""Forgetting vs settings: fine-tune on guns' 70% rows for a fixed number of steps (no early stopping), then
the held-out (a) score and the Gaussian-oracle ratio. python benchmarks/results/finetune_s8/forget.py TAG STEPS '<JSON overrides>'"""
import json, sys, time
import numpy as np, torch
sys.path.insert(0, "benchmarks")
import finetune as bench
from categorical import score as bscore
from icl_diffusion import DiffusionImputer, fine_tune
from icl_diffusion import finetune as ft
_orig = ft.KeepBest.on_validation_end
def _keep_last(self, trainer, pl_module):  # the end weights, whatever validation said (forgetting is the question)
    _orig(self, trainer, pl_module)
    self.best_state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}
    self.best_step = trainer.global_step
ft.KeepBest.on_validation_end = _keep_last
torch.set_num_threads(1)
tag, steps, over = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
from pathlib import Path
Path("runs/ft8").mkdir(parents=True, exist_ok=True)
table = over.pop("table", "guns")
df, test, missing, holey, mean, std = bench.one_table(table)
t = time.process_time()
out = fine_tune(df[~test].reset_index(drop=True), out=f"runs/ft8/{tag}.safetensors", progress=False,
                max_steps=steps, val_every=steps, patience=100, **over)
cpu = (time.process_time() - t) / 60
# the last weights, whatever validation said: KeepBest keeps the best; with one validation at the end the
# written file is the end weights if they beat the start, else the start weights
from icl_diffusion import load_checkpoint
info = load_checkpoint(out).info["fine_tuned"]
acc, err = bscore(DiffusionImputer(checkpoint=str(out), random_state=0).fit_transform(holey), df, missing, mean, std)
print(f"[{tag}] {over} steps {steps} cpu-min {cpu:.1f} kept step {info['best_step']} val {info['val_before']:.4f}->{info['val_after']:.4f} heldout acc {acc:.3f} nrmse {err:.4f} gauss {bench.gaussian_ratio(str(out)):.3f}", flush=True)
