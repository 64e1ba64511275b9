"""Compare icl_point runs of other checkpoints with the shipped one on imputation.py's grid (same masks).

    python benchmarks/results/compare_grid.py SHIPPED_AND_PEERS_DIR LABEL=RUNS.csv [LABEL=RUNS.csv ...]

SHIPPED_AND_PEERS_DIR holds the per-dataset ``*.runs.csv`` of the full grid (every method, stage 5b: session 7's
runs, committed as benchmarks/results/grid_runs/session7); each RUNS.csv is ``imputation.py --methods icl_point --checkpoint CKPT --out F.csv``'s
runs file, relabelled LABEL. Prints mean NRMSE over the real-table rows per dataset and per mechanism, the mean
rank among all methods, and the Gaussian tables' ratio to the exact conditional mean.
"""
import sys
from pathlib import Path

import pandas as pd

base = pd.concat([pd.read_csv(p) for p in sorted(Path(sys.argv[1]).glob("*.runs.csv"))])
others = [pd.read_csv(spec.split("=", 1)[1]).query("method == 'icl_point'").assign(method=spec.split("=", 1)[0])
          for spec in sys.argv[2:]]
runs = pd.concat([base, *others])
labels = ["icl_point", *[spec.split("=", 1)[0] for spec in sys.argv[2:]], "missforest"]
real = runs[runs.dataset != "gaussian"]
print(real.groupby(["dataset", "method"]).nrmse.mean().unstack()[labels].round(4).to_string())
print(real.groupby(["mechanism", "method"]).nrmse.mean().unstack()[labels].round(4).to_string())
cell = real.groupby(["dataset", "mechanism", "rate", "method"]).nrmse.mean().unstack()
print("mean NRMSE over", len(cell), "rows:", cell.mean().round(4).to_dict())
for label in labels[:-1]:  # rank among the peers with the other icl rows left out
    peers = [m for m in cell.columns if m == label or m not in labels[:-1]]
    print(f"mean rank of {label} among {len(peers)}: {cell[peers].rank(axis=1).mean()[label]:.2f}")
gauss = runs[runs.dataset == "gaussian"].groupby(["mechanism", "rate", "method"]).ratio.mean().unstack()
print(gauss[labels[:-1]].round(3).to_string())
