"""screen.py's prediction section (3 splits) with estimator parameters, against the reference rows.
Run from the repository root: python benchmarks/results/pred_params.py OUT.csv [name=value ...]
(values parsed as Python literals, e.g. blend_inputs=True); prints per-table means and the paired gain."""
import ast
import sys

sys.path.insert(0, "benchmarks")
import pandas as pd
import torch

torch.set_num_threads(1)
import screen

from icl_diffusion import load_pretrained

out, *pairs = sys.argv[1:]
params = {k: ast.literal_eval(v) for k, v in (p.split("=", 1) for p in pairs)}
runs = screen.prediction_scores(load_pretrained(), **params)
runs.to_csv(out, index=False)
ref = pd.read_csv("benchmarks/results/screen/stage25/prediction.csv")
for task, metric in (("classification", "auc"), ("classification", "accuracy"), ("classification", "log_loss"),
                     ("regression", "r2")):
    a = ref[ref.task == task].set_index(["table", "split"])[metric]
    b = runs[runs.task == task].set_index(["table", "split"])[metric]
    d = (b - a).dropna()
    print(f"{task} {metric}: ref {a.groupby('table').mean().mean():.4f} new {b.groupby('table').mean().mean():.4f} "
          f"gain {d.mean():+.4f} se {d.std() / len(d) ** 0.5:.4f}")
    print(pd.DataFrame({"ref": a.groupby("table").mean(), "new": b.groupby("table").mean()}).round(4).to_string())
