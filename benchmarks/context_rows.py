"""What capping the key rows costs: NRMSE and seconds of the point estimate vs ``max_context_rows``.

Every row attends across rows only to the key rows (``inference.choose_key_rows``: at most
``max_context_rows``, complete rows first), which makes a call linear in rows. This measures the quality
given up against full attention (every row a key row) on the real development tables larger than the
default cap, with the shipped checkpoint, on the same masks for every cap.

    python benchmarks/context_rows.py                      # ~5 min on 1 thread
    python benchmarks/context_rows.py --caps 64,512,full --seeds 0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/context_rows.py`

from benchmarks.common import load_real_table, make_mask, markdown_table, resolve_checkpoint

TABLES = ["quakes", "college", "guns", "close_college"]  # 777 .. 3,010 rows


def nrmse(filled: np.ndarray, x: np.ndarray, missing: np.ndarray) -> float:
    return float(np.sqrt(np.mean((filled[missing] - x[missing]) ** 2)))  # columns have unit std


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--caps", default="64,128,256,512,full")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    import torch

    from icl_diffusion.estimators import DiffusionImputer

    torch.set_num_threads(args.threads)
    pretrained, desc, _ = resolve_checkpoint(args.checkpoint)
    print(f"checkpoint: {desc}; {args.threads} thread(s)\n", flush=True)
    caps = args.caps.split(",")
    rows = []
    for key in TABLES:
        table = load_real_table(key)
        n = len(table.x)
        for mech in ("mcar", "mar"):
            errs, secs = {c: [] for c in caps}, {c: [] for c in caps}
            for seed in (int(s) for s in args.seeds.split(",")):
                missing = make_mask(table.x, mech, 0.3, np.random.default_rng(seed))
                x_in = np.where(missing, np.nan, table.x)
                for cap in caps:
                    k = n if cap == "full" else int(cap)
                    start = time.perf_counter()
                    filled = DiffusionImputer(checkpoint=pretrained, device="cpu", random_state=seed,
                                              max_context_rows=k).fit_transform(x_in)
                    secs[cap].append(time.perf_counter() - start)
                    errs[cap].append(nrmse(filled, table.x, missing))
            rows.append([key, f"{n} x {table.x.shape[1]}", mech,
                         *(f"{np.mean(errs[c]):.3f} ({np.mean(secs[c]):.2f} s)" for c in caps)])
            print(rows[-1], flush=True)
    print(f"\n30% missing, NRMSE (seconds) of the one-call point estimate, mean over seeds {args.seeds}\n")
    print(markdown_table(["table", "rows x features", "mechanism", *(f"cap {c}" for c in caps)], rows))


if __name__ == "__main__":
    main()
