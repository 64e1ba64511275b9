"""Per-column held-out NRMSE on diamonds (the (a) split and mask): checkpoints given vs MissForest."""
import sys
import numpy as np, torch
sys.path.insert(0, "benchmarks")
import finetune as bench
from categorical import load_table, numeric_image, missforest_mixed
from common import make_mask
from icl_diffusion import DiffusionImputer
torch.set_num_threads(1)
df, cats = load_table("diamonds", 5000)
z, mean, std = numeric_image(df)
rng = np.random.default_rng(0)
test = rng.random(len(df)) < 0.3
missing = np.zeros(df.shape, dtype=bool); missing[test] = make_mask(z[test], "mcar", 0.2, rng)
holey = df.mask(missing)
fills = {c: DiffusionImputer(checkpoint=c if c != "shipped" else None, random_state=0).fit_transform(holey) for c in ["shipped", *sys.argv[1:]]}
fills["missforest"] = missforest_mixed(holey, 0)
for name, f in fills.items():
    out = []
    for j, c in enumerate(df.columns):
        r = missing[:, j]
        if c in cats: out.append(f"{c} {np.mean(f[c][r].astype(str).values == df[c][r].astype(str).values):.2f}")
        else: out.append(f"{c} {np.sqrt(np.mean(((f[c][r] - df[c][r]) / std[j]) ** 2)):.3f}")
    print(name[-30:], " | ".join(out), flush=True)
