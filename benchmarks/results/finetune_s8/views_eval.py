"""Held-out (a)-protocol score of checkpoints under each ensemble setting. python benchmarks/results/finetune_s8/views_eval.py TABLE CKPT..."""
import sys
import numpy as np, torch
sys.path.insert(0, "benchmarks")
import finetune as bench
from categorical import score as bscore
from icl_diffusion import DiffusionImputer
torch.set_num_threads(1)
table = sys.argv[1]
df, test, missing, holey, mean, std = bench.one_table(table)
for ckpt in sys.argv[2:]:
    for ens in [("identity",), ("yeo_johnson",), ("identity", "yeo_johnson")]:
        filled = DiffusionImputer(checkpoint=None if ckpt == "shipped" else ckpt, ensemble=ens, random_state=0).fit_transform(holey)
        acc, err = bscore(filled, df, missing, mean, std)
        print(f"{table} {ckpt} {'+'.join(ens)} acc {acc:.3f} nrmse {err:.4f}", flush=True)
