"""Per-column held-out NRMSE on diamonds (the (a) split and mask): checkpoints given vs MissForest."""
import sys
import numpy as np, torch
sys.path.insert(0, "benchmarks")
import finetune as bench
from categorical import missforest_mixed
from icl_diffusion import DiffusionImputer
torch.set_num_threads(1)
df, test, missing, holey, mean, std = bench.one_table("diamonds")
cats = [c for c in df.columns if str(df[c].dtype) == "category"]
fills = {c: DiffusionImputer(checkpoint=c if c != "shipped" else None, random_state=0).fit_transform(holey) for c in ["shipped", *sys.argv[1:]]}
fills["missforest"] = missforest_mixed(holey, 0)
for name, f in fills.items():
    out = []
    for j, c in enumerate(df.columns):
        r = missing[:, j]
        if c in cats: out.append(f"{c} {np.mean(f[c][r].astype(str).values == df[c][r].astype(str).values):.2f}")
        else: out.append(f"{c} {np.sqrt(np.mean(((f[c][r] - df[c][r]) / std[j]) ** 2)):.3f}")
    print(name[-30:], " | ".join(out), flush=True)
