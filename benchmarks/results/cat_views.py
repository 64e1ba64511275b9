"""screen.py's categorical part (mixed tables: categorical accuracy, numeric NRMSE) for each checkpoint and each ensemble
(plain view, Yeo-Johnson view, both). Run from the repository root: python benchmarks/results/cat_views.py CKPT..."""
import sys

sys.path.insert(0, 'benchmarks')
import torch

torch.set_num_threads(1)
import screen

from icl_diffusion import load_checkpoint

for path in sys.argv[1:]:
    for ens in (("identity",), ("yeo_johnson",), ("identity", "yeo_johnson")):
        cat = screen.categorical_scores(load_checkpoint(path), ensemble=ens)
        print(path, ens, f"acc {cat.acc.mean():.4f} nrmse {cat.nrmse.mean():.4f}", flush=True)
