"""R^2 of ``DiffusionRegressor`` per table and split for several checkpoints, as the screen's prediction section runs
it (classification.py's tables and 70/30 splits, 512 key rows), with optional estimator settings (session 34: where
the RePaint line's regression deficit sat).

    python benchmarks/results/regressor_splits.py carseats,hitters shipped=checkpoints/icl_diffusion_small.safetensors \\
        s50b=checkpoints/candidates/stage50b_step3000.safetensors --splits 10 --set tree_weight=0
"""

import argparse
import ast
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import r2_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import classification

from icl_diffusion import load_checkpoint
from icl_diffusion.estimators import DiffusionRegressor


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("tables", help="comma list of classification.py's regression tables")
    p.add_argument("checkpoints", nargs="+", help="LABEL=FILE")
    p.add_argument("--splits", type=int, default=3)
    p.add_argument("--set", nargs="*", default=[], help="estimator settings NAME=VALUE (Python literals)")
    args = p.parse_args()
    params = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in args.set)}
    names = args.tables.split(",")
    tables, _ = classification.load_tables(names)
    for label, path in (c.split("=", 1) for c in args.checkpoints):
        pretrained = load_checkpoint(path)
        for name in names:
            x, y, task = tables[name]
            r2, weights = [], []
            for seed in range(args.splits):
                x_tr, y_tr, x_te, y_te = classification.split(x, y, task, seed, 1024)
                est = DiffusionRegressor(checkpoint=pretrained, device="cpu", random_state=seed, max_context_rows=512,
                                         **params)
                r2.append(r2_score(y_te, est.fit(x_tr, np.asarray(y_tr, float)).predict(x_te)))
                weights.append(est.tree_weight_)
            print(f"{name:18s} {label:10s} R^2 {np.mean(r2):.4f}  splits {np.round(r2, 3)}  tree weight "
                  f"{np.round(weights, 2)}", flush=True)


if __name__ == "__main__":
    main()
