"""Throughput of the synthetic-table prior: tables/s and cells/s at a few table sizes.

    python benchmarks/prior_throughput.py [--threads 1] [--seconds 1.0] [--device cpu]

Single process. Each size runs with the default batch size (max_cells // (rows * features), at most
max_batch_size), so every batch is about the same amount of work. Timings are the best of ``--rounds``
rounds (the development machine is shared, the best round is the least disturbed one); tables/s and
cells/s are wall-clock, and the process CPU time per batch is printed too, since on a loaded machine
it is the steadier measure of the work itself. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time

import torch

from priors import PriorConfig, default_batch_size, sample_batch

SIZES = ((32, 4), (64, 8), (128, 16), (512, 32), (1024, 64))


def measure(
    cfg: PriorConfig, n_rows: int, n_features: int, family: str, seconds: float, rounds: int, device: str
) -> tuple[float, float]:
    """Best (wall, process CPU) seconds per batch over ``rounds`` rounds of at least ``seconds`` each."""
    generator = torch.Generator().manual_seed(0)
    kwargs = {"n_rows": n_rows, "n_features": n_features, "family": family, "device": device}
    sample_batch(cfg, generator, **kwargs)  # warm-up
    best_wall = best_cpu = float("inf")
    for _ in range(rounds):
        n, start, start_cpu = 0, time.perf_counter(), time.process_time()
        while True:
            sample_batch(cfg, generator, **kwargs)
            n += 1
            if device != "cpu":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        best_wall = min(best_wall, elapsed / n)
        best_cpu = min(best_cpu, (time.process_time() - start_cpu) / n)
    return best_wall, best_cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1 core)")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum time per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = PriorConfig()

    print(
        f"device={args.device} threads={torch.get_num_threads()} torch={torch.__version__} "
        f"max_cells={cfg.max_cells} max_batch_size={cfg.max_batch_size}\n"
    )
    print("| family | rows x features | tables/batch | ms/batch | CPU ms/batch | tables/s | cells/s |")
    print("|---|---|---|---|---|---|---|")
    for family in ("scm", "gaussian"):
        for n_rows, n_features in SIZES:
            wall, cpu = measure(cfg, n_rows, n_features, family, args.seconds, args.rounds, args.device)
            batch_size = default_batch_size(cfg, n_rows, n_features)
            tables = batch_size / wall
            print(
                f"| {family} | {n_rows} x {n_features} | {batch_size} | {wall * 1e3:.1f} | {cpu * 1e3:.1f} | "
                f"{tables:,.0f} | {tables * n_rows * n_features / 1e6:.2f} M |"
            )


if __name__ == "__main__":
    main()
