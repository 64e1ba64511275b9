"""Experiment (session 23, not adopted): more closed-form estimates offered to the point estimate's blend with the
network's inputs (``inference.input_weights`` / ``blend_with_inputs``), the shipped weights unchanged. VARIANT:
base (the engine as it is) | sharp (+ the sharp-bandwidth nearest-rows estimate, which the network is handed but
the blend was not) | nearest (+ the smooth estimate over the 10 nearest key rows only) | both (+ both).
Run from the repository root (imputation.py's full grid, icl_point, 1 thread; results in
benchmarks/results/imputation.md, session 23; runs files in benchmarks/results/grid_runs/session23_blend/):

    python benchmarks/results/sharp_blend.py sharp sharp.runs.csv [imputation.py arguments]
"""
import sys

sys.path.insert(0, "benchmarks")
import torch

torch.set_num_threads(1)
import imputation as I

import icl_diffusion.model as M
from icl_diffusion import load_checkpoint

variant, out = sys.argv[1], sys.argv[2]
stash = {}
orig_ne = M.neighbour_estimates
def ne(*a, **k):
    r = orig_ne(*a, **k)
    stash["r"] = r
    if variant in ("nearest", "both"):
        stash["near"] = orig_ne(*a, **{**k, "kernel": "nearest"})[0]
    return r
M.neighbour_estimates = ne
extra = {"base": (), "sharp": ("sharp",), "nearest": ("near",), "both": ("sharp", "near")}[variant]
orig_prop = M.Denoiser.closed_form_inputs.fget
M.Denoiser.closed_form_inputs = property(lambda self: orig_prop(self) + (() if getattr(self, "_inside", False) else extra))
orig_fwd = M.Denoiser.forward
def fwd(self, *a, return_inputs=False, **k):
    self._inside = True
    try:
        out = orig_fwd(self, *a, return_inputs=return_inputs, **k)
    finally:
        self._inside = False
    if not return_inputs or not extra:
        return out
    add = [stash["r"][1] if e == "sharp" else stash["near"] for e in extra]
    inp = out[2]
    return (*out[:2], torch.cat([inp, torch.stack(add, -1).to(inp.dtype)], -1), *out[3:])
M.Denoiser.forward = fwd
pre = load_checkpoint("checkpoints/icl_diffusion_small.safetensors")
args = I.parse_args(["--methods", "icl_point", "--threads", "1", *sys.argv[3:]])
runs = I.run(args, pre)
runs.to_csv(out, index=False)
print(runs.groupby(["dataset", "mechanism"]).nrmse.mean().unstack().round(4).to_string())
print("mean", runs.nrmse.mean())
