"""Speed benchmark on this CPU (issue 7): denoiser calls, achieved GFLOP/s, peak memory, end-to-end times.

1. The machine's ceiling: GFLOP/s of a large fp32 matmul (best of a few, 2n^3 FLOPs each).
2. Seconds per denoiser call vs rows (100, 1,000, 10,000) x features (5, 20, 100), for the default
   ``DenoiserConfig`` and for the checkpoint's config when it differs. A call is one network evaluation of
   the whole table as inference runs it (``inference.TableDenoiser``: at most ``max_context_rows`` key
   rows, other rows in chunks of ``chunk_rows`` against them; no context cache; 30% of cells unknown).
   Achieved GFLOP/s = ``denoiser_flops`` / seconds, next to the matmul ceiling.
3. Peak resident memory of imputing a 10,000 x 100 table (``DiffusionImputer``'s point estimate, the checkpoint's
   stored settings: two calls with the two-view ensemble)
   in a fresh child process: ``ru_maxrss`` after the imputation, and before it (imports, model, table).
4. End to end on development-size tables (Boston 506 x 14, ISLR/College 777 x 17, AER/Guns 1,173 x 11, Gaussian
   1,000 x 20 and 2,000 x 25; 30% MCAR): the point
   estimate (stored settings), 20 imputations of the conditional sampler (``n_steps=5``), MICE and MissForest-like,
   timed in the same process. The sampler's cost is a fixed part (its centre, the point estimate, and the
   calibration of its spread) plus a part linear in the number of imputations (a batch dimension), so by default it
   is measured with ``--sampler-measure`` draws and twice as many, and extrapolated along that line to 20.

FLOPs of one call (``denoiser_flops``; D = d_model, L = n_blocks, m = mlp_ratio, C = max_classes, N rows,
F features, K = min(N, max_context_rows) key rows; a multiply-add counts 2 FLOPs; layer norms, GELU,
softmax and other elementwise work are not counted):

    FLOPs = L * [ N F * ( 2 D^2 + 2 D^2        row attention: q and out projections
                        + 6 D^2 + 2 D^2        feature attention: qkv and out projections
                        + 4 m D^2              MLP (D -> m D -> D)
                        + 4 K D                row attention: scores and weighted sum over K key rows
                        + 4 F D )              feature attention: the same over F features
                  + K F * 4 D^2 ]              row attention: k, v projections of the key rows only
          + N F * (2 g D + 2 D^2 + 2 D (1 + C))  value embedding (g = 2 inputs with the Gaussian feature)
                                               and output heads
          + [gaussian_feature] N (2/3 F^3 + 4 F^2) + 4 K F^2 + 9 F^3
                                               float64: one F x F LU solve and a product with the
                                               covariance per row, the covariance over the key rows,
                                               its eigendecomposition (~9 F^3, a rough count)
          + [gaussian_em_iters = I] I K (14/3 F^3)   each EM iteration: per key row an LU solve with F + 1
                                               right-hand sides and the conditional covariance product

With ``row_attention="isab"`` (M inducing points) a cell attends to M rows instead of K, and each column
and block adds 4 M K D (the inducing points attend to the key rows) + 8 M D^2 (their projections). For the
default D = 64, m = 2 a cell costs ~82k FLOPs per block in linear layers plus 256 (K + F) in attention:
at K = 512 the attention across rows is the larger part.

    python benchmarks/speed.py --quick                          # a small subset, for development
    python benchmarks/speed.py --skip memory,e2e                # the grid (2 and 1 threads)
    python benchmarks/speed.py --skip grid --grid-threads 2     # memory + end to end (2 threads)
    (everything in one run takes more than 10 minutes while the machine is busy: hence the split)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/speed.py`

from benchmarks.common import (
    diffusion_imputer,
    gaussian_table,
    load_real_table,
    make_mask,
    markdown_table,
    mice_imputer,
    missforest_imputer,
    nrmse,
    resolve_checkpoint,
    timed,
)
from icl_diffusion import Denoiser, DenoiserConfig, save_checkpoint
from icl_diffusion.inference import TableDenoiser, choose_key_rows


def matmul_gflops(n: int = 2048, repeats: int = 5, device: str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """Best GFLOP/s of an (n x n) @ (n x n) matmul (fp32 on the CPU by default; on CUDA each timed product
    ends with a synchronize)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)

    def product() -> None:
        a @ b
        sync()

    product()  # warm-up
    best = min(_seconds(product) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def denoiser_flops(cfg: DenoiserConfig, n_rows: int, n_features: int, max_context_rows: int) -> float:
    """Analytic FLOPs of one denoiser call (see the module docstring for the formula)."""
    D, L, m, C = cfg.d_model, cfg.n_blocks, cfg.mlp_ratio, cfg.max_classes
    N, F = n_rows, n_features
    K = min(N, max_context_rows)
    attended = cfg.n_inducing if cfg.row_attention == "isab" else K
    per_cell = (2 + 2 + 6 + 2 + 4 * m) * D * D + 4 * attended * D + 4 * F * D
    per_block = N * F * per_cell + K * F * 4 * D * D
    if cfg.row_attention == "isab":
        M = cfg.n_inducing
        per_block += F * (4 * M * K * D + 8 * M * D * D)
    g = 2 if getattr(cfg, "gaussian_feature", False) else 1
    flops = L * per_block + N * F * (2 * g * D + 2 * D * D + 2 * D * (1 + C))
    if g == 2:  # the closed-form linear-Gaussian input feature (float64)
        flops += N * (2 / 3 * F**3 + 4 * F**2) + 4 * K * F**2 + 9 * F**3
        flops += getattr(cfg, "gaussian_em_iters", 0) * K * 14 / 3 * F**3
    return float(flops)


@torch.no_grad()
def time_denoiser_call(model: Denoiser, n_rows: int, n_features: int, max_context_rows: int = 512,
                       chunk_rows: int = 1024, repeats: int = 3, missing: float = 0.3) -> float:
    """Median wall seconds of one uncached denoiser call on a random (n_rows, n_features) table."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n_rows, n_features, generator=gen)
    known = torch.rand(n_rows, n_features, generator=gen) >= missing
    keys = choose_key_rows(known, max_context_rows, gen)
    is_cat = torch.zeros(1, n_features, dtype=torch.bool)
    n_classes = torch.zeros(1, n_features, dtype=torch.long)
    den = TableDenoiser(model, is_cat, n_classes, keys, chunk_rows, cache_context=False)
    t = torch.full((1,), model.cfg.num_steps - 1, dtype=torch.long)
    x_t = torch.where(known, x, torch.randn(n_rows, n_features, generator=gen))[None]
    times = [_seconds(lambda: den(x_t, t, known[None])) for _ in range(repeats)]
    return float(np.median(times))


@torch.no_grad()
def time_gaussian_feature(n_rows: int, n_features: int, max_context_rows: int = 512,
                          missing: float = 0.3, em_iters: int = 0) -> float:
    """Wall seconds of the closed-form Gaussian input feature alone (fit over the key rows, one solve per
    row), the part of a call that runs in float64 outside the transformer."""
    from icl_diffusion.gaussian_feature import gaussian_estimate, table_gaussian

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, n_rows, n_features, generator=gen)
    known = torch.rand(1, n_rows, n_features, generator=gen) >= missing
    is_cat = torch.zeros(1, n_features, dtype=torch.bool)
    k = min(n_rows, max_context_rows)

    def feature():
        mean, cov = table_gaussian(x[:, :k], known[:, :k], is_cat, em_iters=em_iters)
        return gaussian_estimate(x, known, is_cat, cov, mean)

    return _seconds(feature)


def denoiser_grid(model: Denoiser, rows: list[int], features: list[int], peak: float, budget_s: float,
                  max_context_rows: int) -> list[list]:
    """Rows of the calls-per-size table; sizes whose predicted time exceeds ``budget_s`` are skipped
    (predicted from the GFLOP/s achieved so far)."""
    time_denoiser_call(model, 64, 4, repeats=1)  # warm-up: first-call allocations
    out, rate = [], None
    for n in rows:
        for f in features:
            flops = denoiser_flops(model.cfg, n, f, max_context_rows)
            if rate is not None and flops / rate > budget_s:
                out.append([f"{n:,}", f, flops / 1e9, f"skipped (~{flops / rate:.0f} s predicted)", "", "", ""])
                continue
            repeats = 3 if flops < 20e9 else 1
            s = time_denoiser_call(model, n, f, max_context_rows, repeats=repeats)
            rate = flops / s
            row = [f"{n:,}", f, flops / 1e9, s, rate / 1e9, f"{100 * rate / 1e9 / peak:.0f}%"]
            if getattr(model.cfg, "gaussian_feature", False):
                row.append(time_gaussian_feature(n, f, max_context_rows))
            out.append(row)
            print(f"  {n} x {f}: {s:.3f} s, {rate / 1e9:.1f} GFLOP/s", flush=True)
    return out


def memory_child(checkpoint: str, n_rows: int, n_features: int, threads: int) -> None:
    """Run in a fresh process: impute an (n_rows, n_features) table, print JSON with ru_maxrss."""
    torch.set_num_threads(threads)
    from icl_diffusion.estimators import DiffusionImputer

    table = gaussian_table(n_rows, n_features, n_factors=5, seed=0)
    x = np.where(make_mask(table.x, "mcar", 0.3, np.random.default_rng(0)), np.nan, table.x)
    imp = DiffusionImputer(checkpoint=checkpoint, device="cpu", random_state=0)
    imp.fit(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = imp.transform(x)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert np.isfinite(out).all()
    print(json.dumps({"before_mib": before / 1024, "peak_mib": after / 1024, "seconds": seconds,
                      "input_mib": x.nbytes / 2**20}))


def measure_memory(checkpoint: str, n_rows: int, n_features: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--memory-child", checkpoint, "--memory-size", f"{n_rows}x{n_features}",
           "--threads", str(threads)]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"memory child failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def end_to_end(pretrained, draws_measured: int, draws: int, n_steps: int, quick: bool) -> list[list]:
    """Rows of the end-to-end table: each method on each development-size table, one process."""
    tables = [load_real_table("boston")]
    if not quick:  # the real grid's widest tables (the trees carry their blend), and 1,000 x 20: issue 13's size
        tables += [load_real_table("college"), load_real_table("guns"),  # for one point estimate (under 1 s)
                   gaussian_table(1000, 20, n_factors=5, seed=0), gaussian_table(2000, 25, n_factors=5, seed=0)]
    rows = []
    for table in tables:
        missing = make_mask(table.x, "mcar", 0.3, np.random.default_rng(0))
        x = np.where(missing, np.nan, table.x)
        shape = f"{table.x.shape[0]:,} x {table.x.shape[1]}"
        methods = [
            ("icl-diffusion point estimate (stored settings)", diffusion_imputer(pretrained), 1),
            (f"icl-diffusion conditional sampler, {n_steps} steps, mean of {draws} draws",
             diffusion_imputer(pretrained, method="conditional", n_steps=n_steps, n_imputations=draws_measured),
             draws / draws_measured),
            ("MICE (BayesianRidge, 10 sweeps)", mice_imputer, 1),
            ("MissForest-like (ExtraTrees 50, 5 sweeps)", missforest_imputer(), 1),
        ]
        for name, impute, scale in methods:
            filled, s = timed(impute, x, 0)
            note = ""
            if scale != 1:  # the fixed part and the per-draw part, from twice the draws
                twice = diffusion_imputer(pretrained, method="conditional", n_steps=n_steps,
                                          n_imputations=2 * draws_measured)
                _, s2 = timed(twice, x, 0)
                note = f"measured {s:.1f} s for {draws_measured} draws, {s2:.1f} s for {2 * draws_measured}, extrapolated"
                s = s2 + (s2 - s) / draws_measured * (draws - 2 * draws_measured)
            rows.append([table.name, shape, name, s, nrmse(filled, table.x, missing), note])
            print(f"  {table.name} {name}: {s:.1f} s {note}", flush=True)
    return rows


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="as benchmarks/imputation.py (default: shipped, interim, random)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (memory and end-to-end parts)")
    p.add_argument("--grid-threads", default="2,1",
                   help="the denoiser-call grid runs once per thread count (1 thread can win on a busy machine)")
    p.add_argument("--rows", default="100,1000,10000")
    p.add_argument("--features", default="5,20,100")
    p.add_argument("--max-context-rows", type=int, default=512)
    p.add_argument("--call-budget", type=float, default=240.0,
                   help="skip grid sizes predicted to take longer than this many seconds per call")
    p.add_argument("--memory-size", default="10000x100")
    p.add_argument("--sampler-draws", type=int, default=20)
    p.add_argument("--sampler-measure", type=int, default=2,
                   help="draws actually run; the time is scaled to --sampler-draws (linear in draws)")
    p.add_argument("--sampler-steps", type=int, default=5)
    p.add_argument("--skip", default="", help="comma list of parts to skip: grid, memory, e2e")
    p.add_argument("--quick", action="store_true", help="small grid, small memory table, Boston only")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.features, args.memory_size = "100,1000", "5,20", "2000x20"
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    mem_rows, mem_features = (int(v) for v in args.memory_size.split("x"))
    if args.memory_child:
        memory_child(args.memory_child, mem_rows, mem_features, args.threads)
        return
    skip = set(filter(None, args.skip.split(",")))
    pretrained, described, ckpt_file = resolve_checkpoint(args.checkpoint)
    print(f"checkpoint: {described}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)

    grid_threads = [int(v) for v in args.grid_threads.split(",")]
    peaks = {}
    for threads in dict.fromkeys([args.threads, *grid_threads]):
        torch.set_num_threads(threads)
        peaks[threads] = matmul_gflops()
        print(f"fp32 matmul 2048^3, {threads} thread(s): {peaks[threads]:.1f} GFLOP/s (best of 5)", flush=True)
    print()

    rows = [int(v) for v in args.rows.split(",")]
    features = [int(v) for v in args.features.split(",")]
    header = ["rows", "features", "GFLOP / call", "seconds / call", "GFLOP/s", "of matmul rate"]
    configs = [("default DenoiserConfig()", Denoiser(DenoiserConfig()).eval())]
    if pretrained.model.cfg != DenoiserConfig():
        configs.append(("checkpoint's config", pretrained.model))
    if "grid" not in skip:
        for threads in grid_threads:
            torch.set_num_threads(threads)
            for label, model in configs:
                print(f"### Denoiser call, {label}, {threads} thread(s): {model.cfg} "
                      f"({model.num_parameters():,} parameters), max_context_rows={args.max_context_rows}",
                      flush=True)
                grid = denoiser_grid(model, rows, features, peaks[threads], args.call_budget, args.max_context_rows)
                extra = ["Gaussian feature alone, s"] if getattr(model.cfg, "gaussian_feature", False) else []
                print(markdown_table(header + extra, [r[: len(header) + len(extra)] for r in grid]), "\n",
                      flush=True)
        if len(configs) == 1:
            print("(the checkpoint's config is the default config: the tables above hold for it)\n")
        torch.set_num_threads(args.threads)

    if "memory" not in skip:
        with tempfile.TemporaryDirectory() as tmp:
            path = ckpt_file or str(save_checkpoint(  # random init: written for the child
                Path(tmp) / "model.safetensors", pretrained.model, pretrained.diffusion))
            mem = measure_memory(path, mem_rows, mem_features, args.threads)
        print(f"### Peak memory, imputing {mem_rows:,} x {mem_features} (30% MCAR, point estimate with the stored settings, "
              "fresh process)")
        print(markdown_table(["input table MiB", "ru_maxrss before imputing MiB", "ru_maxrss peak MiB",
                              "increase MiB", "seconds"],
                             [[mem["input_mib"], mem["before_mib"], mem["peak_mib"],
                               mem["peak_mib"] - mem["before_mib"], mem["seconds"]]]), "\n", flush=True)

    if "e2e" not in skip:
        print(f"### End to end, 30% MCAR, {args.threads} thread(s) for every method (same process; NRMSE in "
              "complete-data std units)", flush=True)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=args.threads):
            e2e = end_to_end(pretrained, args.sampler_measure, args.sampler_draws, args.sampler_steps,
                             args.quick)
        print(markdown_table(["table", "rows x features", "method", "seconds", "NRMSE", "note"], e2e))
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
