"""Experiment (session 11): the 500 x 10 Gaussian tables of imputation.py (3 seeds, MCAR / MAR / MNAR at 10/30/50%):
ratio to the exact conditional mean with more EM iterations in the closed-form Gaussian fit (the shipped model
uses 10). Run from the repository root: python benchmarks/results/em_iters.py 30,100 closed_form,icl_point"""
import sys

sys.path.insert(0, 'benchmarks')
import torch

torch.set_num_threads(1)
import imputation as I

from icl_diffusion import load_checkpoint

its = [int(v) for v in sys.argv[1].split(",")]
methods = sys.argv[2] if len(sys.argv) > 2 else "closed_form,icl_point"
for it in its:
    pre = load_checkpoint('checkpoints/icl_diffusion_small.safetensors')
    pre.model.cfg.gaussian_em_iters = it
    args = I.parse_args(["--datasets", "gaussian", "--methods", methods, "--threads", "1"])
    runs = I.run(args, pre)
    runs.to_csv(f"em{it}.runs.csv", index=False)
    print("EM", it, flush=True)
    print(runs.groupby(["mechanism", "rate", "method"]).ratio.mean().unstack().round(3).to_string(), flush=True)
