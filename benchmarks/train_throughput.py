"""Pretraining throughput of the model configs (issue 16): steps/s, tables/s, cells/s, GFLOP/s and its share
of the machine's matmul ceiling.

    python benchmarks/train_throughput.py                    # CPU, 1 thread, conf/model/*.yaml, ~5 s each
    python benchmarks/train_throughput.py --models small --seconds 30 --threads 2
    python benchmarks/train_throughput.py --device cuda       # bf16 autocast, prior=default (gpu_base's)
    python benchmarks/train_throughput.py --models small --overrides prior.max_cells=8192 model.n_blocks=2

A measured step is what Lightning runs for one batch: ``training_loss`` with the LightningModule's step
randomness, backward, gradient clipping at 1.0, AdamW and the learning-rate schedule, for the model
``conf/model/<name>.yaml`` and the prior group ``--prior`` composed as ``icl_diffusion.train`` composes
them (on CUDA under bf16 autocast, as ``precision=bf16-mixed`` runs it). The prior batch of each step is
generated on ``--prior-device``, given its host facts and moved to the device as the DataModule does it,
timed apart (the "prior" column; with DataLoader workers it would overlap the step). Every config trains
on the same stream of batches (seed 0), after one untimed warm-up step, for at least ``--seconds`` of steps
and ``--min-steps`` steps, or exactly ``--steps``. Times are wall-clock; on CUDA each phase ends with
``torch.cuda.synchronize()``. The process CPU time of the steps is reported too: on a shared machine it
is the steadier measure of the work itself (with one thread; on CUDA it is the host's share).

FLOPs of a step, per table of the batch's shape: 3x the network's forward FLOPs (the backward costs twice
the forward) + 1x the closed-form Gaussian feature's (no gradient flows through it), from
``speed.denoiser_flops`` with every row a key row (training caps none). The ceiling is
``speed.matmul_gflops`` at the same thread count: fp32 2048^3 on the CPU, bf16 8192^3 on CUDA.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/train_throughput.py`

from benchmarks.common import markdown_table
from benchmarks.speed import denoiser_flops, matmul_gflops
from icl_diffusion.lit import DiffusionLitModule, PriorDataModule
from icl_diffusion.model import DenoiserConfig
from icl_diffusion.train import compose
from icl_diffusion.training import training_loss
from priors import PriorConfig, PriorDataset

MODELS = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "conf" / "model").glob("*.yaml"))


def step_flops(cfg: DenoiserConfig, batch_shape: torch.Size) -> float:
    """FLOPs of one training step on a (B, N, F) batch (see the module docstring)."""
    B, N, F = batch_shape
    network = denoiser_flops(replace(cfg, gaussian_feature=False), N, F, max_context_rows=N)
    feature = denoiser_flops(cfg, N, F, max_context_rows=N) - network
    return B * (3 * network + feature)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model_name: str, prior_name: str, device: torch.device, prior_device: str, seconds: float,
            min_steps: int, steps: int | None, overrides: tuple[str, ...] = ()) -> dict:
    """Train ``model_name`` on the prior for a while; per-step means of the two phases and the totals.
    ``overrides``: more Hydra overrides (``prior.<field>=...``, ``model.<field>=...``)."""
    cfg = compose([f"model={model_name}", f"prior={prior_name}", *overrides])
    plain = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("model", "diffusion", "loss", "optim", "prior")}
    torch.manual_seed(0)
    module = DiffusionLitModule(plain["model"], plain["diffusion"], plain["loss"], plain["optim"],
                                val={"real": False}, prior=plain["prior"], seed=0).to(device)
    optim = module.configure_optimizers()
    opt, sched = optim["optimizer"], optim["lr_scheduler"]["scheduler"]
    params = [p for p in module.model.parameters() if p.requires_grad]
    stream = iter(PriorDataset(PriorConfig(**plain["prior"]), seed=0, device=prior_device))
    data = PriorDataModule()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def next_batch() -> dict:
        batch = data.on_before_batch_transfer(next(stream), 0)
        batch = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
        _sync(device)
        return batch

    def train_step(batch: dict) -> None:
        with autocast:
            loss, _ = training_loss(module.model, module.diffusion, batch, module.loss_cfg, module.step_generator())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        _sync(device)

    train_step(next_batch())  # warm-up: allocations, AdamW's state
    n = tables = cells = 0
    prior_s = step_s = cpu_s = flops = 0.0
    while (n < steps) if steps else (n < min_steps or step_s < seconds):
        start = time.perf_counter()
        batch = next_batch()
        prior_s += time.perf_counter() - start
        start, start_cpu = time.perf_counter(), time.process_time()
        train_step(batch)
        step_s += time.perf_counter() - start
        cpu_s += time.process_time() - start_cpu
        B, N, F = batch["x"].shape
        n, tables, cells = n + 1, tables + B, cells + B * N * F
        flops += step_flops(module.model_cfg, batch["x"].shape)
    return {"params": module.model.num_parameters(), "steps": n, "tables": tables, "cells": cells,
            "prior_s": prior_s, "step_s": step_s, "cpu_s": cpu_s, "flops": flops}


def report_rows(results: dict[str, dict], ceiling: float) -> list[list]:
    rows = []
    for name, r in results.items():
        n, step_s = r["steps"], r["step_s"]
        gflops = r["flops"] / step_s / 1e9
        rows.append([name, f"{r['params']:,}", n, f"{r['tables'] / n:.1f}", f"{r['cells'] / n:,.0f}",
                     f"{r['prior_s'] / n:.3f}", f"{step_s / n:.3f}", f"{r['cpu_s'] / n:.3f}", f"{n / step_s:.2f}",
                     f"{r['tables'] / step_s:,.1f}", f"{r['cells'] / step_s:,.0f}",
                     f"{r['tables'] / (step_s + r['prior_s']):,.1f}", f"{r['flops'] / n / 1e9:.2f}",
                     f"{gflops:.1f}", f"{gflops / ceiling:.0%}"])
    return rows


HEADER = ["model", "parameters", "steps", "tables / step", "cells / step", "prior s / step", "train s / step",
          "train CPU s / step", "steps/s", "tables/s", "cells/s", "tables/s with prior", "GFLOP / step", "GFLOP/s", "of matmul ceiling"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="conf/model configs, comma-separated")
    parser.add_argument("--prior", default=None,
                        help="conf/prior group (default: small_tables on CPU, the CPU recipes' prior; default on CUDA)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--prior-device", default="cpu", help="where batches are generated (cpu or cuda)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--seconds", type=float, default=5.0, help="least training-step seconds per config")
    parser.add_argument("--min-steps", type=int, default=2, help="least timed steps per config")
    parser.add_argument("--steps", type=int, default=None, help="exactly this many timed steps per config")
    parser.add_argument("--overrides", nargs="*", default=[],
                        help="Hydra overrides for every config, e.g. a recipe's prior.n_rows=[32,256]")
    parser.add_argument("--out", default=None, help="also write the report (markdown) here")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    prior = args.prior or ("default" if device.type == "cuda" else "small_tables")
    load_before = os.getloadavg()
    if device.type == "cuda":
        ceiling, ceiling_name = matmul_gflops(8192, device=args.device, dtype=torch.bfloat16), "bf16 matmul 8192^3"
        where = f"{torch.cuda.get_device_name(device)}, bf16 autocast"
    else:
        ceiling, ceiling_name = matmul_gflops(), "fp32 matmul 2048^3"
        where = f"CPU, {torch.get_num_threads()} thread(s), fp32"
    print(f"{where}; prior={prior} (generated on {args.prior_device}); {ceiling_name}: {ceiling:.1f} GFLOP/s",
          flush=True)
    results = {}
    for name in args.models.split(","):
        results[name] = measure(name, prior, device, args.prior_device, args.seconds, args.min_steps, args.steps,
                                tuple(args.overrides))
        print(f"{name}: {results[name]['steps']} steps in {results[name]['step_s']:.1f} s", flush=True)
    table = markdown_table(HEADER, report_rows(results, ceiling))
    load_after = os.getloadavg()
    command = " ".join(["python benchmarks/train_throughput.py", *(argv if argv is not None else sys.argv[1:])])
    run = (f"- {datetime.date.today().isoformat()}, torch {torch.__version__}, {where}; prior `{prior}` (batches "
           f"generated on {args.prior_device}); ceiling {ceiling_name} = {ceiling:.1f} GFLOP/s.")
    load = (f"- Load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, on "
            f"{os.cpu_count()} cores.")
    report = "\n".join([f"`{command}`", "", run, load, "", table])
    print("\n" + report)
    if args.out:
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()
