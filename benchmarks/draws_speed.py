"""Speed of multiple imputation (issue 14, item 4): K draws of a 2,000 x 25 table against one imputation of
the MissForest-like imputer, in one process, on the same mask, with the same number of threads.

The table is ``gaussian_table(2000, 25, n_factors=5)`` (the size of benchmarks/speed.py's end-to-end row) with
20% of its cells missing completely at random, so almost every row has a missing cell and the key rows' encoding
cannot be cached. The draws are ``DiffusionImputer.sample`` with the checkpoint's draw settings
(``SamplerConfig``: draw method and steps), or those settings overridden per variant. MissForest-like runs
first and last, so a change of the machine's load during the run shows as two different times. Reported per
method: wall and CPU seconds, network forward passes, and the draws' quality on this table (the oracle is
known: benchmarks/draws.py's columns).

    python benchmarks/draws_speed.py                        # the checkpoint's draw settings
    python benchmarks/draws_speed.py --variants "share_first_call=0;share_first_call=1,draw_steps=3"
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/draws_speed.py`

from benchmarks.common import (
    gaussian_table,
    make_mask,
    markdown_table,
    missforest_imputer,
    nrmse,
    resolve_checkpoint,
)
from benchmarks.draws import parse_variant, score, with_sampler


def timed(fn, *args):
    """(result, wall seconds, CPU seconds of this process) of fn(*args)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # IterativeImputer's convergence warning
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn(*args)
        return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--features", type=int, default=25)
    p.add_argument("--rate", type=float, default=0.2, help="MCAR share of missing cells")
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", default="", help='";"-separated SamplerConfig overrides (draws.py --variants)')
    args = p.parse_args()
    import torch

    from icl_diffusion.estimators import DiffusionImputer

    torch.set_num_threads(args.threads)
    pretrained, desc, _ = resolve_checkpoint(args.checkpoint)
    table = gaussian_table(args.rows, args.features, n_factors=5, seed=args.seed)
    missing = make_mask(table.x, "mcar", args.rate, np.random.default_rng(args.seed))
    x = np.where(missing, np.nan, table.x)
    print(f"checkpoint: {desc}\n{table.name}, {args.rate:.0%} MCAR ({missing.any(1).mean():.1%} of rows with a "
          f"missing cell), {args.draws} draws, {args.threads} thread(s), torch {torch.__version__}; "
          f"load average at start {os.getloadavg()[0]:.1f}\n", flush=True)
    forwards = [0]
    pretrained.model.register_forward_pre_hook(lambda *_: forwards.__setitem__(0, forwards[0] + 1))

    rows = []

    def missforest(label: str) -> float:
        filled, wall, cpu = timed(missforest_imputer(), x, args.seed)
        rows.append([f"MissForest-like, one imputation ({label})", wall, cpu, "", nrmse(filled, table.x, missing),
                     "", "", "", "", ""])
        print(f"  {rows[-1][0]}: {wall:.1f} s", flush=True)
        return wall

    def point(x_in: np.ndarray, seed: int) -> np.ndarray:
        return DiffusionImputer(checkpoint=pretrained, random_state=seed).fit(x_in).transform(x_in)

    mf = [missforest("first")]
    forwards[0] = 0
    filled, wall, cpu = timed(point, x, args.seed)
    label = f"icl point estimate (ensemble: {' + '.join(pretrained.sampler.ensemble)})"
    rows.append([label, wall, cpu, forwards[0], nrmse(filled, table.x, missing), "", "", "", "", ""])
    for variant in args.variants.split(";"):
        pre = with_sampler(pretrained, parse_variant(variant))

        def draw(x_in: np.ndarray, seed: int, pre=pre) -> np.ndarray:
            imp = DiffusionImputer(checkpoint=pre, random_state=seed).fit(x_in)
            return np.stack(imp.sample(x_in, n_imputations=args.draws))

        forwards[0] = 0
        draws, wall, cpu = timed(draw, x, args.seed)
        s = score(draws, table.x, missing, table)
        label = f"icl {args.draws} draws ({pre.sampler.draw_method}, {pre.sampler.draw_steps} steps" + (
            f"; {variant})" if variant else ")")
        rows.append([label, wall, cpu, forwards[0], s["NRMSE mean"], s["NRMSE 1 draw"], s["mean/oracle"],
                     s["spread"], s["cover90"], s["CRPS"]])
        print(f"  {label}: {wall:.1f} s", flush=True)
    mf.append(missforest("last"))
    for row in rows:
        if row[0].startswith("icl") and "draws" in row[0]:
            row.append(row[1] / np.mean(mf))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}\n")
    header = ["method", "wall s", "CPU s", "forward passes", "NRMSE (of the mean)", "NRMSE 1 draw", "mean/oracle",
              "spread", "cover90", "CRPS", "wall / MissForest"]
    print(markdown_table(header, [r + [""] * (len(header) - len(r)) for r in rows]))


if __name__ == "__main__":
    main()
