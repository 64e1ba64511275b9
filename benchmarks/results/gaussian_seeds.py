"""Ratio to the exact conditional mean on imputation.py's Gaussian table, 10 seeds, per checkpoint (session 12):

    python benchmarks/imputation.py --datasets gaussian --seeds 0,1,2,3,4,5,6,7,8,9 --methods icl_point \
        --threads 1 --checkpoint CKPT --out DIR/gauss10_NAME.csv          # for each checkpoint
    python benchmarks/results/gaussian_seeds.py DIR                      # one row per NAME
"""
import sys
from pathlib import Path

import pandas as pd

for path in sorted(Path(sys.argv[1]).glob("gauss10_*.runs.csv")):
    runs = pd.read_csv(path).query("method != 'oracle'")
    cells = runs.groupby(["mechanism", "rate"]).ratio.mean()
    print(f"{path.name[8:-9]:24s}", " ".join(f"{m} {r:.0%}: {v:.3f}" for (m, r), v in cells.items()),
          f"| mean {runs.ratio.mean():.4f}")
