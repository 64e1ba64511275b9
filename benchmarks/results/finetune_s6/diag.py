"""Diagnostic: validation score vs the benchmark's held-out score along fine-tuning, table of (a).
python benchmarks/results/finetune_s6/diag.py TABLE '{"lr": 1e-4}' TAG [contexts]
contexts (session 19): held-out read three ways, 128 key rows one view no blend / 512 key rows one view no blend /
the default pipeline (two views, blend)."""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
import finetune as bench  # registers LARGE_TABLES
from categorical import score as bscore

from icl_diffusion import DiffusionImputer
from icl_diffusion import finetune as ft
from icl_diffusion.checkpoint import Pretrained, load_pretrained

torch.set_num_threads(1)
table = sys.argv[1]
overrides = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
tag = sys.argv[3] if len(sys.argv) > 3 else "run"
df, test, missing, holey, mean, std = bench.one_table(table)
start = load_pretrained()
eval_time = [0.0]

READS = ({},)  # DiffusionImputer settings the held-out cells are imputed with; the last one's accuracy is printed
if sys.argv[4:] == ["contexts"]:
    READS = ({"max_context_rows": 128, "ensemble": ("identity",), "blend_inputs": False},
             {"max_context_rows": 512, "ensemble": ("identity",), "blend_inputs": False}, {})

def heldout(model):
    t = time.perf_counter()
    was = model.training; model.eval()
    p = Pretrained(model, start.diffusion, start.info, start.sampler)
    scores = [bscore(DiffusionImputer(checkpoint=p, random_state=0, **kw).fit_transform(holey), df, missing, mean, std)
              for kw in READS]
    model.train(was)
    eval_time[0] += time.perf_counter() - t
    return scores[-1][0], " / ".join(f"{s[1]:.4f}" for s in scores)

from icl_diffusion.finetune import FineTuneConfig, UserTableDataset, encode_tables, split
from icl_diffusion.training import host_facts, training_loss
from priors import PriorConfig

_cfg = FineTuneConfig(**{"max_steps": 400, "patience": 100, "seed": 0, **overrides, "p_prior": 0.0})
_tr, _va = split(encode_tables(df[~test].reset_index(drop=True), 100), _cfg.val_frac, 0)
_ds = UserTableDataset(_tr, _cfg, PriorConfig())
_fixed = [dict(**(b := _ds.batch(10**6 + i)), **host_facts(b)) for i in range(12)]
_fixed_val = [dict(**(b := UserTableDataset(_va, _cfg, PriorConfig()).batch(10**6 + i)), **host_facts(b)) for i in range(12)]
def trainloss(pl_module):
    t = time.perf_counter()
    model = pl_module.model if hasattr(pl_module, "model") else pl_module
    was = model.training; model.eval(); out = []
    with torch.no_grad():
        for fixed in (_fixed, _fixed_val):
            tot = 0.0
            for i, b in enumerate(fixed):
                if hasattr(pl_module, "_columns"): pl_module._columns = b["columns"]
                st = training_loss(model, pl_module.diffusion if hasattr(pl_module, "diffusion") else start.diffusion, b,
                                           getattr(pl_module, "loss_cfg", None), torch.Generator().manual_seed(i))[1]
                tot += np.array([float(st["num_mse"]), float(st["cat_ce"])])
                if hasattr(pl_module, "_columns"): pl_module._columns = None
            out.append(tot / len(fixed))
    model.train(was); eval_time[0] += time.perf_counter() - t
    return out
orig = ft.KeepBest.on_validation_end
t0 = [time.perf_counter()]
def patched(self, trainer, pl_module):
    orig(self, trainer, pl_module)
    acc, err = heldout(pl_module.model)
    tl = trainloss(pl_module)
    el = (time.perf_counter() - t0[0] - eval_time[0]) / 60
    print(f"[{tag}] step {trainer.global_step} train-min {el:.2f} val {self.history[-1][1]:.4f} heldout acc {acc:.3f} nrmse {err} loss train/val-rows {tl[0].round(4)}/{tl[1].round(4)}", flush=True)
ft.KeepBest.on_validation_end = patched
acc0, err0 = heldout(start.model)
_orig_fit = ft.L.Trainer.fit
def _fit(self, module, *a, **k):
    tl = trainloss(module); print(f"[{tag}] step 0 loss train/val-rows {tl[0].round(4)}/{tl[1].round(4)}", flush=True)
    return _orig_fit(self, module, *a, **k)
ft.L.Trainer.fit = _fit
print(f"[{tag}] step 0 heldout acc {acc0:.3f} nrmse {err0}", flush=True)
eval_time[0] = 0.0
t0[0] = time.perf_counter()
cfg = {"max_steps": 400, "patience": 100, "seed": 0}
cfg.update(overrides)
Path("runs/finetune_s6").mkdir(exist_ok=True, parents=True)
ft.fine_tune(df[~test].reset_index(drop=True), checkpoint=start, out=f"runs/finetune_s6/{tag}.safetensors", progress=False, **cfg)
print(f"[{tag}] {overrides} minutes total {(time.perf_counter()-t0[0])/60:.2f} (heldout eval {eval_time[0]/60:.2f})", flush=True)
