"""RePaint's trade-off on real tables (issue 14, item 2): accuracy, calibration and seconds of RePaint draws per
schedule (t_T = respaced steps, jump_length, jump_n_sample), from the paper's (250, 10, 10) down to cheap ones,
next to the conditional sampler on the same schedule (the same denoiser calls, so the same cost).

RePaint (Lugmayr et al. 2022, Alg. 1): known cells re-noised to the current level and blended in, the network
called with ``known`` all False; the conditional sampler: known cells clean and flagged known. Both through
``DiffusionImputer.sample`` (K draws in one batch). Per setting: NRMSE of one draw (mean over the draws) and of
the mean of the K draws, CRPS, coverage of the draws' 5%-95% range (a perfect sampler's K-draw range covers
about (K - 1) / (K + 1) of the true values: 0.82 at K = 10), wall and CPU seconds, the schedule's denoiser
calls and the network passes made (the conditional sampler shares its first call between the draws and makes
none at t = 0). The tables are subsampled (``--rows``) so that the paper's schedule (2,410 calls) fits the CPU
budget: one call costs about the same for either sampler, so a schedule's cost is its calls.

    python benchmarks/repaint_tradeoff.py                              # ~25 min of CPU on 1 thread
    python benchmarks/repaint_tradeoff.py --tables boston --rows 60 --settings 10-1-1,5-1-1   # a quick look
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/repaint_tradeoff.py`

from benchmarks.common import load_real_table, make_mask, markdown_table, resolve_checkpoint
from benchmarks.draws import score

# t_T-jump_length-jump_n_sample; "c" after a setting: also the conditional sampler on that schedule.
SETTINGS = "250-10-10,100-10-10,50-5-5c,25-5-5c,50-1-1c,10-1-1c,5-1-1c,3-1-1c"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--tables", default="boston,auto", help="benchmarks.common.REAL_TABLES keys")
    p.add_argument("--rows", type=int, default=60, help="seeded row subsample of each table")
    p.add_argument("--rate", type=float, default=0.2, help="MCAR share of missing cells")
    p.add_argument("--draws", type=int, default=10)
    p.add_argument("--settings", default=SETTINGS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    import torch

    from icl_diffusion.estimators import DiffusionImputer
    from icl_diffusion.sampling import count_calls, repaint_schedule

    torch.set_num_threads(args.threads)
    pretrained, desc, _ = resolve_checkpoint(args.checkpoint)
    print(f"checkpoint: {desc}; {args.draws} draws; {args.threads} thread(s)\n", flush=True)
    passes = [0]
    pretrained.model.register_forward_pre_hook(lambda *_: passes.__setitem__(0, passes[0] + 1))
    runs = []
    for name in args.tables.split(","):
        table = load_real_table(name, max_rows=args.rows, seed=args.seed)
        missing = make_mask(table.x, "mcar", args.rate, np.random.default_rng(args.seed))
        x = np.where(missing, np.nan, table.x)
        shape = f"{table.x.shape[0]} x {table.x.shape[1]}"
        point = DiffusionImputer(checkpoint=pretrained, random_state=args.seed).fit(x).transform(x)
        runs.append([f"{name} ({shape})", "point estimate (reference)", 1, 1, 1, 1, 1, "",
                     score(point[None], table.x, missing, table)["NRMSE mean"], "", "", "", ""])
        for setting in args.settings.split(","):
            steps, jl, jn = (int(v) for v in setting.rstrip("c").split("-"))
            chain = pretrained.diffusion.respaced(steps).n_chain
            calls = count_calls(repaint_schedule(chain, jl, jn))[0]
            for method in ("repaint", "conditional") if setting.endswith("c") else ("repaint",):
                imp = DiffusionImputer(checkpoint=pretrained, random_state=args.seed, method=method, n_steps=steps,
                                       jump_length=jl, jump_n_sample=jn).fit(x)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    wall, cpu, passes[0] = time.perf_counter(), time.process_time(), 0
                    draws = np.stack(imp.sample(x, n_imputations=args.draws))
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                runs.append([f"{name} ({shape})", method, steps, jl, jn, calls, passes[0], *(
                    score(draws, table.x, missing, table)[k] for k in ("NRMSE 1 draw", "NRMSE mean", "CRPS",
                                                                        "cover90")), wall, cpu])
                print(runs[-1], flush=True)
    print(f"\n{args.rate:.0%} MCAR, {args.draws} draws, seed {args.seed}\n")
    print(markdown_table(["table", "sampler", "t_T", "jump_length", "jump_n_sample", "calls", "passes", "NRMSE 1 draw",
                          f"NRMSE mean of {args.draws}", "CRPS", "cover90", "wall s", "CPU s"], runs))


if __name__ == "__main__":
    main()
