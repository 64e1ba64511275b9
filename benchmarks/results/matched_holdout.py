"""Experiment (session 15; runs at commit 51196d7, whose engine has ``inference.missingness_odds``; reverted after
it, see benchmarks/results/draws.md): the spread calibration's hidden cells drawn uniformly among a column's observed cells
(before) or with the column's missingness odds (``inference.missingness_odds``, clipped to 1/R..R times their
median). 20 draws of the shipped checkpoint with its stored draw settings, draws.py's tables and masks at 30%
missing, MCAR / MAR / MNAR; one CSV of draws.py's scores per variant.

    python benchmarks/results/matched_holdout.py uniform 0,1,2,3,4,5    # the calibration before session 15
    python benchmarks/results/matched_holdout.py range3 0,1,2,3,4,5     # odds within 1/3..3 (the default)
    python benchmarks/results/matched_holdout.py range10 0,1,2,3,4,5    # 1/10..10, range30: 1/30..30

Paired differences (per table, mechanism and seed) are in benchmarks/results/draws.md, session 15.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import draws
import numpy as np
import pandas as pd
import torch
from common import make_mask

import icl_diffusion.inference as engine
from icl_diffusion import load_checkpoint

if not hasattr(engine, "missingness_odds"):  # elsewhere every variant would silently run the uniform calibration
    raise SystemExit("matched_holdout.py runs at commit 51196d7 only (git checkout 51196d7)")
torch.set_num_threads(1)
label, seeds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
if label == "uniform":
    engine.missingness_odds = lambda x, known, is_cat, columns: np.ones(x.shape)
else:
    engine.MATCH_ODDS_RANGE = (1 / float(label.removeprefix("range")), float(label.removeprefix("range")))
draw = draws.icl_draws(load_checkpoint("checkpoints/icl_diffusion_small.safetensors"), None, 20)
runs = []
for seed in seeds:
    for table in (draws.make_table(name, seed) for name in ("gaussian500x10", "boston", "auto")):
        for mech in ("mcar", "mar", "mnar"):
            missing = make_mask(table.x, mech, 0.3, np.random.default_rng(seed))
            out = draw(np.where(missing, np.nan, table.x), seed)
            runs.append({"table": table.name, "mech": mech, "seed": seed, **draws.score(out, table.x, missing, table)})
runs = pd.DataFrame(runs)
runs.to_csv(f"matched_holdout_{label}.csv", index=False)
print(label, runs.groupby(["table", "mech"])[["CRPS", "PIT90", "cover90", "NRMSE mean"]].mean().round(4).to_string())
