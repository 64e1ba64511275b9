"""Fine-tuning on your own table: before vs after vs MissForest, and what the model forgets.

(a) One large mixed table (default AER/NMES1988, 4,406 rows x 19 columns, 9 categorical): fine-tune on 70%
    of the rows (``icl_diffusion.fine_tune``, defaults unless told), then impute the other 30% with 20% of
    their cells hidden (MCAR, seeded). Every method imputes the same table, [the 70% rows complete; the 30%
    rows masked], and is scored on the hidden cells: accuracy of categorical cells, NRMSE of numeric cells
    (complete-data std units). Methods: the checkpoint before and after fine-tuning, MissForest for mixed
    tables (``categorical.missforest_mixed``), column mean / mode.
(c) Forgetting: the imputation error on synthetic Gaussian tables (500 x 10, MCAR and MAR 30%, 3 seeds) as a
    ratio to the exact conditional mean, before vs after.

    .venv/bin/python benchmarks/finetune.py [--table nmes1988] [--max-steps 400] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from categorical import TABLES, load_table, missforest_mixed, mode_mean, numeric_image, score
from common import gaussian_table, make_mask, markdown_table, nrmse, oracle_conditional_mean

from icl_diffusion import DiffusionImputer, fine_tune, load_checkpoint
from icl_diffusion.checkpoint import DEFAULT_CHECKPOINT


def gaussian_ratio(checkpoint) -> float:
    """Mean over MCAR / MAR 30% x seeds 0-2 of NRMSE / oracle NRMSE on 500 x 10 Gaussian tables."""
    ratios = []
    for seed in range(3):
        table = gaussian_table(500, 10, seed=seed)
        for mech in ("mcar", "mar"):
            missing = make_mask(table.x, mech, 0.3, np.random.default_rng(seed))
            filled = DiffusionImputer(checkpoint=checkpoint, random_state=seed).fit_transform(
                np.where(missing, np.nan, table.x))
            ratios.append(nrmse(filled, table.x, missing) / nrmse(oracle_conditional_mean(table, missing),
                                                                  table.x, missing))
    return float(np.mean(ratios))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default="nmes1988", choices=sorted(TABLES))
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    ap.add_argument("--max-steps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default="runs/finetune_bench")
    ap.add_argument("--out", default="benchmarks/results/finetune.md")
    args = ap.parse_args()
    torch.set_num_threads(1)

    df, _ = load_table(args.table, max_rows=None)
    z, mean, std = numeric_image(df)
    rng = np.random.default_rng(args.seed)
    test = rng.random(len(df)) < 0.3
    missing = np.zeros(df.shape, dtype=bool)
    missing[test] = make_mask(z[test], "mcar", 0.2, rng)
    holey = df.mask(missing)
    out = Path(args.out_dir) / f"{args.table}.safetensors"

    start = time.perf_counter()
    fine_tune(df[~test].reset_index(drop=True), checkpoint=args.checkpoint, out=out, max_steps=args.max_steps,
              seed=args.seed, progress=False)
    minutes = (time.perf_counter() - start) / 60

    methods = {
        "icl before": lambda d: DiffusionImputer(checkpoint=args.checkpoint, random_state=0).fit_transform(d),
        "icl fine-tuned": lambda d: DiffusionImputer(checkpoint=str(out), random_state=0).fit_transform(d),
        "missforest_mixed": lambda d: missforest_mixed(d, args.seed),
        "mode_mean": mode_mean,
    }
    rows = []
    for name, impute in methods.items():
        t = time.perf_counter()
        filled = impute(holey)
        acc, err = score(filled, df, missing, mean, std)
        rows.append([name, f"{acc:.3f}", f"{err:.3f}", f"{time.perf_counter() - t:.1f}"])
        print(rows[-1], flush=True)
    forgetting = [["before", f"{gaussian_ratio(args.checkpoint):.3f}"],
                  ["after", f"{gaussian_ratio(str(out)):.3f}"]]
    info = load_checkpoint(out).info["fine_tuned"]
    text = "\n".join([
        f"# Fine-tuning on {args.table} ({len(df)} rows x {df.shape[1]} columns)", "",
        (f"Command: `.venv/bin/python benchmarks/finetune.py --table {args.table} --max-steps {args.max_steps} "
        f"--checkpoint {args.checkpoint}`"), "",
        (f"Fine-tuned on {int((~test).sum())} rows for {info['steps']} steps ({minutes:.1f} CPU-min, one thread; "
        f"best validation at step {info['best_step']}; validation score {info['val_before']:.4f} -> "
        f"{info['val_after']:.4f}); scored on {int(missing.sum())} hidden cells of the other {int(test.sum())} rows."),
        "", markdown_table(["method", "categorical accuracy", "numeric NRMSE", "seconds"], rows), "",
        "Forgetting: Gaussian tables (500 x 10, MCAR and MAR 30%, 3 seeds), NRMSE / exact conditional mean's", "",
        markdown_table(["checkpoint", "ratio to the oracle"], forgetting),
    ])
    print(text)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
