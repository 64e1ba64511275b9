"""screen.py's prediction part alone (icl: classification AUC / accuracy / log loss, regression R^2; 3 splits) per checkpoint.
Run from the repository root: python benchmarks/results/pred_screen.py CKPT..."""
import sys

sys.path.insert(0, 'benchmarks')
import torch

torch.set_num_threads(1)
import screen

from icl_diffusion import load_checkpoint

for path in sys.argv[1:]:
    runs = screen.prediction_scores(load_checkpoint(path))
    cls = runs[runs.task == "classification"].groupby("table", sort=False)[["auc", "accuracy", "log_loss"]].mean()
    reg = runs[runs.task == "regression"].groupby("table", sort=False)["r2"].mean()
    print(path, f"AUC {cls.auc.mean():.4f} acc {cls.accuracy.mean():.4f} logloss {cls.log_loss.mean():.4f} R2 {reg.mean():.4f}")
    print(cls.round(4).to_string()); print(reg.round(4).to_string(), flush=True)
