"""Held-out (a)-protocol score of checkpoints under each ensemble setting. python benchmarks/results/finetune_s8/views_eval.py TABLE CKPT..."""
import sys
import numpy as np, torch
sys.path.insert(0, "benchmarks")
import finetune as bench
from categorical import load_table, numeric_image, score as bscore
from common import make_mask
from icl_diffusion import DiffusionImputer
torch.set_num_threads(1)
table = sys.argv[1]
df, _ = load_table(table, max_rows=bench.LARGE_TABLES.get(table, (None, None))[1])
z, mean, std = numeric_image(df)
rng = np.random.default_rng(0)
test = rng.random(len(df)) < 0.3
missing = np.zeros(df.shape, dtype=bool)
missing[test] = make_mask(z[test], "mcar", 0.2, rng)
holey = df.mask(missing)
for ckpt in sys.argv[2:]:
    for ens in [("identity",), ("yeo_johnson",), ("identity", "yeo_johnson")]:
        filled = DiffusionImputer(checkpoint=None if ckpt == "shipped" else ckpt, ensemble=ens, random_state=0).fit_transform(holey)
        acc, err = bscore(filled, df, missing, mean, std)
        print(f"{table} {ckpt} {'+'.join(ens)} acc {acc:.3f} nrmse {err:.4f}", flush=True)
