"""Classification accuracy by number of classes (2 to 100), next to logistic regression and a random forest.

The model was pretrained on categorical columns of at most 24 levels; levels are told apart by random
identity vectors, so it takes any count up to ``max_classes`` (100) without retraining. This measures what
that is worth as the count grows. Synthetic tables, the same for every method: K classes, each a Gaussian
blob in 10 dimensions (centres N(0, sep^2 I), unit within-class noise; sep = 1.5, so classes overlap), class
sizes drawn from a Dirichlet(2) (imbalanced), ``--rows-per-class`` training rows per class on average, a
stratified 70/30 split.

    .venv/bin/python benchmarks/many_classes.py [--checkpoint PATH] [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, resolve_checkpoint, timed

from icl_diffusion import DiffusionClassifier

CLASS_COUNTS = (2, 5, 10, 20, 30, 50, 100)


def blobs(n_classes: int, rows_per_class: int, seed: int, n_features: int = 10, sep: float = 1.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, sep, (n_classes, n_features))
    sizes = rng.dirichlet(np.full(n_classes, 2.0)) * n_classes * rows_per_class
    sizes = np.maximum(np.round(sizes).astype(int), 4)  # >= 4 rows: every class in train and test
    y = np.repeat(np.arange(n_classes), sizes)
    x = centres[y] + rng.normal(size=(len(y), n_features))
    return x, y


def fit_predict(estimator, x_train, y_train, x_test):
    return estimator.fit(x_train, y_train).predict(x_test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rows-per-class", type=int, default=15)
    ap.add_argument("--out", default="benchmarks/results/many_classes.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pretrained, label, _ = resolve_checkpoint(args.checkpoint)
    methods = {
        "icl": lambda s: DiffusionClassifier(checkpoint=pretrained, random_state=s),
        "logreg": lambda s: LogisticRegression(max_iter=3000),
        "rf": lambda s: RandomForestClassifier(n_estimators=300, random_state=s, n_jobs=1),
    }
    rows = []
    for k in CLASS_COUNTS:
        acc = {m: [] for m in methods}
        secs = {m: [] for m in methods}
        for seed in range(args.seeds):
            x, y = blobs(k, args.rows_per_class, seed)
            x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
            for name, make in methods.items():
                pred, sec = timed(fit_predict, make(seed), x_tr, y_tr, x_te)
                acc[name].append(float((pred == y_te).mean()))
                secs[name].append(sec)
        rows.append([k, len(y_tr), *[f"{np.mean(acc[m]):.3f}" for m in methods],
                     *[f"{np.mean(secs[m]):.2f}" for m in methods]])
        print(rows[-1], flush=True)
    text = "\n".join([
        "# Accuracy by number of classes", "",
        (f"Checkpoint: {label}. Command: `.venv/bin/python benchmarks/many_classes.py --seeds {args.seeds} "
         f"--rows-per-class {args.rows_per_class}`"), "",
        ("Synthetic Gaussian blobs (10 features, separation 1.5, Dirichlet(2) class sizes), 70/30 stratified "
         f"split, mean over {args.seeds} seeds; one thread."), "",
        markdown_table(["classes", "train rows", *[f"acc {m}" for m in methods], *[f"s {m}" for m in methods]], rows),
    ])
    print(text)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
