"""Screen checkpoints before the full benchmarks: icl-diffusion alone on the masks of ``categorical.py`` and the
splits of ``classification.py``.

For each checkpoint: categorical accuracy and numeric NRMSE of the one-call point estimate over categorical.py's
48 (table, mechanism, rate, seed) masks, then classification (ROC AUC, accuracy, log loss) and regression (R^2)
over classification.py's tables and 3 splits. The peers are not rerun: their numbers on the same masks and
splits are in benchmarks/results/categorical.md and classification.md. A checkpoint is adopted only after the
full benchmarks (every method in the same run).

    python benchmarks/screen.py checkpoints/icl_diffusion_small.safetensors runs/<stage>/<snapshot>.safetensors
    python benchmarks/screen.py checkpoints/icl_diffusion_small.safetensors --local-context-rows 128
"""

from __future__ import annotations

import argparse
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import categorical
import classification
from common import diffusion_imputer, make_mask

from icl_diffusion import load_checkpoint


def categorical_scores(pretrained, **params) -> pd.DataFrame:
    """Mean accuracy and NRMSE per table (rows) over categorical.py's default masks."""
    impute = diffusion_imputer(pretrained, max_context_rows=512, **params)
    rows = []
    for key in categorical.TABLES:
        df, _ = categorical.load_table(key, 1000)
        z, mean, std = categorical.numeric_image(df)
        for mech in ("mcar", "mar"):
            for rate in (0.1, 0.3, 0.5):
                for seed in (0, 1, 2):
                    rng = np.random.default_rng([seed, zlib.crc32(f"{key}/{mech}/{rate}".encode())])
                    missing = make_mask(z, mech, rate, rng)
                    acc, err = categorical.score(impute(df.mask(missing), seed), df, missing, mean, std)
                    rows.append((key, acc, err))
    return pd.DataFrame(rows, columns=["table", "acc", "nrmse"])


def prediction_scores(pretrained, **params) -> pd.DataFrame:
    """classification.py's runs (icl only), one row per table x split."""
    tables, _ = classification.load_tables(list(classification.TABLES))
    methods = classification.build_methods(pretrained, 512, **params)
    methods = {task: {"icl": methods[task]["icl"]} for task in methods}
    runs, _, _ = classification.run(types.SimpleNamespace(splits=3, max_train=1024), tables, methods)
    return runs


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--local-context-rows", type=int, default=None,
                        help="estimator parameter local_context_rows (default: the checkpoint's)")
    args = parser.parse_args()
    params = {} if args.local_context_rows is None else {"local_context_rows": args.local_context_rows}
    for path in args.checkpoints:
        pretrained = load_checkpoint(path)
        cat = categorical_scores(pretrained, **params)
        runs = prediction_scores(pretrained, **params)
        cls = runs[runs.task == "classification"].groupby("table", sort=False)[["auc", "accuracy", "log_loss"]].mean()
        reg = runs[runs.task == "regression"].groupby("table", sort=False)["r2"].mean()
        print(f"{path}\n  categorical.py masks: accuracy {cat.acc.mean():.4f}, NRMSE {cat.nrmse.mean():.4f}"
              f"\n  per table: {cat.groupby('table', sort=False).mean().round(3).to_dict('index')}"
              f"\n  classification: AUC {cls.auc.mean():.4f}, accuracy {cls.accuracy.mean():.4f}, "
              f"log loss {cls.log_loss.mean():.4f}; regression R^2 {reg.mean():.4f}"
              f"\n  AUC per table: {cls.auc.round(3).to_dict()}\n  R^2 per table: {reg.round(3).to_dict()}", flush=True)


if __name__ == "__main__":
    main()
