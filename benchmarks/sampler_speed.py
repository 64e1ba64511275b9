"""Cost of the sampler settings on this CPU: denoiser calls, seconds, seconds per call.

A 500 x 20 Gaussian table with 20% of its cells missing completely at random, imputed by
``inference.impute_standardized`` with a randomly initialized ``Denoiser(DenoiserConfig())`` (the cost of
a call does not depend on the weights). With 500 <= ``max_context_rows`` rows every row is a key row, so one
sampler call is one forward pass over the whole table; the 20-sample row batches 20 copies of the table
into each call. The official RePaint schedule (t_T = 250, jump 10 x 10: 2,410 calls) is not run: its time
is estimated from the seconds per call of the RePaint row.

    python benchmarks/sampler_speed.py                 # 2 threads: 13 min while training shares the cores
    python benchmarks/sampler_speed.py --threads 1     # 5.5 min on the same loaded machine: less contention
    python benchmarks/sampler_speed.py --rows 200      # smaller table, for a quick look
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/sampler_speed.py`

from benchmarks.common import gaussian_table, make_mask, markdown_table
from icl_diffusion.diffusion import GaussianDiffusion
from icl_diffusion.inference import impute_standardized
from icl_diffusion.model import Denoiser, DenoiserConfig
from icl_diffusion.sampling import count_calls, repaint_schedule

# (label, n_samples, sampler keyword arguments)
SETTINGS = [
    ("ddim, n_steps=1 (point estimate)", 1, {"method": "ddim", "n_steps": 1}),
    ("conditional, n_steps=10", 1, {"method": "conditional", "n_steps": 10}),
    ("conditional, n_steps=25", 1, {"method": "conditional", "n_steps": 25}),
    ("conditional, n_steps=50", 1, {"method": "conditional", "n_steps": 50}),
    ("conditional, n_steps=10, 20 samples", 20, {"method": "conditional", "n_steps": 10}),
    ("repaint, n_steps=25, jump 5x5", 1,
     {"method": "repaint", "n_steps": 25, "jump_length": 5, "jump_n_sample": 5}),
]
OFFICIAL = {"method": "repaint", "n_steps": 250, "jump_length": 10, "jump_n_sample": 10}


def n_calls(
    diffusion: GaussianDiffusion, n_steps: int, jump_length: int = 1, jump_n_sample: int = 1, **_
) -> int:
    """Denoiser calls of one ``sample`` run (as the sampler walks its schedule)."""
    chain = diffusion.respaced(n_steps)
    return count_calls(repaint_schedule(chain.n_chain, jump_length, jump_n_sample))[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--missing", type=float, default=0.2, help="MCAR rate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    table = gaussian_table(args.rows, args.features, seed=args.seed)
    missing = make_mask(table.x, "mcar", args.missing, np.random.default_rng(args.seed))
    known = torch.from_numpy(~missing)
    x = torch.from_numpy(np.where(missing, np.nan, table.x)).float()
    is_cat = torch.zeros(args.features, dtype=torch.bool)
    n_classes = torch.zeros(args.features, dtype=torch.long)

    torch.manual_seed(args.seed)
    cfg = DenoiserConfig()
    model = Denoiser(cfg).eval()
    diffusion = GaussianDiffusion()
    forwards = [0]
    model.register_forward_pre_hook(lambda *_: forwards.__setitem__(0, forwards[0] + 1))

    def impute(n_samples: int, kw: dict) -> torch.Tensor:
        return impute_standardized(model, diffusion, x, known, is_cat, n_classes, n_samples=n_samples,
                                   generator=torch.Generator().manual_seed(args.seed), **kw)

    impute(1, {"method": "ddim", "n_steps": 1})  # warm-up: first-call allocations and kernel selection
    print(f"table {args.rows} x {args.features}, {missing.mean():.0%} MCAR; Denoiser(DenoiserConfig()) "
          f"{model.num_parameters():,} parameters (d_model={cfg.d_model}, n_blocks={cfg.n_blocks}, "
          f"row_attention={cfg.row_attention}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")

    rows, per_call = [], {}
    for label, n_samples, kw in SETTINGS:
        calls = n_calls(diffusion, **kw)
        forwards[0] = 0
        wall, cpu = time.perf_counter(), time.process_time()
        out = impute(n_samples, kw)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert forwards[0] == calls, (forwards[0], calls)  # every row a key row: one forward per call
        assert bool(torch.isfinite(out).all()) and torch.equal(out[0][known], x[known])
        per_call[kw["method"]] = wall / calls
        rows.append([label, n_samples, calls, round(wall, 2), round(cpu, 2), round(wall / calls, 3)])
        print(f"  {label}: {calls} calls, {wall:.1f} s", file=sys.stderr, flush=True)
    calls = n_calls(diffusion, **OFFICIAL)
    est = calls * per_call["repaint"]
    rows.append(["repaint, official 250 / 10x10 (estimated, not run)", 1, calls, f"~{est:.0f}", "-",
                 f"{per_call['repaint']:.3f}"])
    print(markdown_table(["sampler setting", "samples", "denoiser calls", "wall s", "CPU s (process)",
                          "wall s / call"], rows))


if __name__ == "__main__":
    main()
