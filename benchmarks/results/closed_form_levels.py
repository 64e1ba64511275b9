"""Accuracy of the engine's imputed levels on the categorical screen's masks (benchmarks/screen.py's ``categorical``
section: 8 mixed tables x MCAR / MAR x 10 / 30 / 50%), mixed with the closed-form class probabilities (the
Gaussian fit's, LDA-style, the network's categorical input) at fixed weights w: (1 - w) engine + w closed form, w
in MIX; w = 0 is the engine's accuracy (the screen's). Session 38 (not adopted: benchmarks/results/categorical.md).

    python benchmarks/results/closed_form_levels.py CHECKPOINT SEEDS OUT.csv     # e.g. ... 0 runs/cf0.csv
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from screen import categorical_masks

from icl_diffusion import DiffusionImputer, inference
from icl_diffusion.gaussian_feature import cell_estimates, converged_em

torch.set_num_threads(1)
ckpt, seeds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
MIX = (0.0, 0.25, 0.5, 0.75, 1.0)
captured = {}  # the engine's last blended_point call: its inputs and its logits
engine_point = inference.blended_point


def capturing(model, diffusion, x, known, is_cat, n_classes, key_rows, *args, **kwargs):
    x0, logits = engine_point(model, diffusion, x, known, is_cat, n_classes, key_rows, *args, **kwargs)
    captured.update(model=model, x=x, known=known, is_cat=is_cat, n_classes=n_classes, keys=key_rows, logits=logits)
    return x0, logits


def closed_form(model, x, known, is_cat, n_classes, keys, n_levels) -> torch.Tensor:
    """(N, F, C) the Gaussian fit's class probabilities, the fit on the key rows (the identity view's)."""
    key_mask = torch.zeros(1, len(x), dtype=torch.bool)
    key_mask[0, keys] = True
    _, probs, _ = cell_estimates(x[None].float(), known[None], is_cat[None], n_classes.reshape(1, -1), n_levels,
                                 None, key_mask, **converged_em(model.cfg.gaussian_em_iters))
    return probs[0].double()


def accuracies(imputer, df) -> list[float]:
    """Accuracy over the masked categorical cells of the captured call at each weight of MIX."""
    c = captured
    net = torch.softmax(c["logits"].double(), -1)
    probs = closed_form(c["model"], c["x"], c["known"], c["is_cat"], c["n_classes"], c["keys"], net.shape[-1])
    cells = (~c["known"] & c["is_cat"][None, :]).numpy()
    out = []
    for w in MIX:
        levels = ((1 - w) * net + w * probs).argmax(-1).numpy()
        right = total = 0
        for j in np.flatnonzero(c["is_cat"].numpy()):
            rows = cells[:, j]
            got = np.asarray(imputer.preprocessor_.decode(j, levels[rows, j].astype(float))).astype(str)
            right += int((got == df.iloc[:, j].to_numpy(object)[rows].astype(str)).sum())
            total += int(rows.sum())
        out.append(right / total if total else np.nan)
    return out


inference.blended_point = capturing
results = []
for key, df, mech, rate, seed, missing, _, _ in categorical_masks(seeds):
    imputer = DiffusionImputer(checkpoint=ckpt, random_state=seed, max_context_rows=512)
    imputer.fit_transform(df.mask(missing))
    results.append((key, mech, rate, seed, *accuracies(imputer, df)))
    print(results[-1], flush=True)
columns = [f"w{w}" for w in MIX]
table = pd.DataFrame(results, columns=["table", "mechanism", "rate", "seed", *columns])
table.to_csv(sys.argv[3], index=False)
print(table.groupby("table")[columns].mean().round(4))
print(table[columns].mean().round(4))
