"""Prototype (session 31): the predictors' target blended with extremely randomized trees, the weight chosen by
5-fold out-of-fold predictions on the training rows. Run from the repository root:
python benchmarks/results/target_trees.py regression|classification [splits]
Prints per table: icl, trees alone, the out-of-fold-chosen blend, random forest (classification.py's peer)."""
import sys

sys.path.insert(0, "benchmarks")
import numpy as np
import pandas as pd
import torch

torch.set_num_threads(1)
import classification as C
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor
from sklearn.model_selection import KFold, StratifiedKFold

from icl_diffusion import load_pretrained

task = sys.argv[1]
splits = int(sys.argv[2]) if len(sys.argv) > 2 else 3
GRID = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
pre = load_pretrained()
methods = C.build_methods(pre, 512)[task]
tables, _ = C.load_tables([n for n, t in C.TABLES.items()])
tables = {k: v for k, v in tables.items() if v[2] == task}


def trees(seed):
    if task == "regression":
        return ExtraTreesRegressor(n_estimators=100, random_state=seed, n_jobs=1)
    return ExtraTreesClassifier(n_estimators=100, random_state=seed, n_jobs=1)


def fit_predict_trees(x_tr, y_tr, x_te, seed, *extra):
    a, b = C.peer_matrices(x_tr, x_te)
    est = trees(seed).fit(a, y_tr)
    return est.predict(b) if task == "regression" else C._proba_all(est, est.predict_proba(b), extra[0])


def loss(y, p):
    if task == "regression":
        return ((y - p) ** 2).mean()
    return -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean()


rows = []
for name, (x, y, _) in tables.items():
    if task == "classification":
        _, y = np.unique(y.to_numpy(), return_inverse=True)
        extra = (int(y.max()) + 1,)
    else:
        y, extra = y.to_numpy(np.float64), ()
    for seed in range(splits):
        x_tr, y_tr, x_te, y_te = C.split(x, y, task, seed, 1024)
        y_tr = np.asarray(y_tr)
        folds = (KFold(5, shuffle=True, random_state=seed) if task == "regression"
                 else StratifiedKFold(5, shuffle=True, random_state=seed))
        oof_i = np.zeros((len(y_tr),) + ((extra[0],) if extra else ()))
        oof_t = np.zeros_like(oof_i)
        for a, b in folds.split(np.zeros(len(y_tr)), y_tr if task == "classification" else None):
            xa, xb = x_tr.iloc[a], x_tr.iloc[b]
            oof_i[b] = methods["icl"].fit_predict(xa, y_tr[a], xb, seed, *extra)
            oof_t[b] = fit_predict_trees(xa, y_tr[a], xb, seed, *extra)
        losses = [loss(y_tr, (1 - w) * oof_i + w * oof_t) for w in GRID]
        w = GRID[int(np.argmin(losses))]
        p_i = methods["icl"].fit_predict(x_tr, y_tr, x_te, seed, *extra)
        p_t = fit_predict_trees(x_tr, y_tr, x_te, seed, *extra)
        p_r = methods["rf"].fit_predict(x_tr, y_tr, x_te, seed, *extra)
        score = (lambda p: C.regression_scores(y_te, p)["r2"]) if task == "regression" else (
            lambda p: C.classification_scores(y_te, p, C.CLIP_PROBA)["auc"])
        rows.append({"table": name, "split": seed, "w": w, "icl": score(p_i), "trees": score(p_t),
                     "blend": score((1 - w) * p_i + w * p_t), "rf": score(p_r)})
        print(rows[-1], flush=True)
df = pd.DataFrame(rows)
print(df.groupby("table")[["w", "icl", "trees", "blend", "rf"]].mean().round(4).to_string())
print(df[["icl", "trees", "blend", "rf"]].groupby(df.table).mean().mean().round(4).to_string())
