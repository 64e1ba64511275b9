"""Experiment (session 11): binary tables of classification.py, 10 splits: ROC AUC of the classifier, of the regressor on
the 0/1 target, of logistic regression, and of two blends of the first two (mean probability, sum of logits).
Run from the repository root: python benchmarks/results/blend_reg01.py OUT.csv"""
import sys

sys.path.insert(0, 'benchmarks')
import numpy as np
import pandas as pd
import torch

torch.set_num_threads(1)
import classification as C
from sklearn.metrics import roc_auc_score

from icl_diffusion import load_checkpoint

pre = load_checkpoint('checkpoints/icl_diffusion_small.safetensors')
names = ["breast_cancer", "default", "college_private", "creditcard", "psid1976", "birthwt"]
tables, _ = C.load_tables(names)
cls, reg, lr = C.icl_classifier(pre, 512), C.icl_regressor(pre, 512), C.sklearn_classifier(C._logreg)
rows = []
for name, (x, y, task) in tables.items():
    classes, y = np.unique(y.to_numpy(), return_inverse=True)
    for seed in range(10):
        x_tr, y_tr, x_te, y_te = C.split(x, y, task, seed, 1024)
        pc = cls(x_tr, y_tr, x_te, seed, 2)[:, 1]
        pr = reg(x_tr, np.asarray(y_tr, dtype=np.float64), x_te, seed)
        pl = lr(x_tr, y_tr, x_te, seed, 2)[:, 1]
        clipped = np.clip(pr, 1e-3, 1 - 1e-3)
        lg = lambda p: np.log(p) - np.log1p(-p)
        pcc = np.clip(pc, 1e-6, 1 - 1e-6)
        r = {"table": name, "split": seed, "cls": roc_auc_score(y_te, pc), "reg": roc_auc_score(y_te, pr),
             "logreg": roc_auc_score(y_te, pl), "mean_p": roc_auc_score(y_te, (pc + clipped) / 2),
             "mean_logit": roc_auc_score(y_te, lg(pcc) + lg(clipped))}
        rows.append(r); print(r, flush=True)
df = pd.DataFrame(rows); df.to_csv(sys.argv[1] if len(sys.argv) > 1 else 'blend_reg01.csv', index=False)
print(df.groupby("table").mean().round(4).to_string()); print(df.drop(columns="split").groupby("table").mean().mean().round(4))
