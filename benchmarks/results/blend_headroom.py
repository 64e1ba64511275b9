"""Session 40: how much of issue 13's gap to MissForest is the blend's choice of weights, and how much its inputs?

The point estimate blends, per numeric column, the network's estimate with its closed-form inputs (the Gaussian
conditional mean, the smooth and the sharp nearest-rows estimates) and the engine's (kernel ridge regression,
extremely randomized trees), with weights of ``inference.INPUT_WEIGHT_STEP``'s simplex grid chosen on held-out
observed cells (``inference.input_weights``). This runs the shipped point estimate on the grid's masks
(``imputation.py``: the same tables, at most 1,000 rows, and the same seeded masks), captures the final call's
estimates of every input (all of them fitted, whatever weight the blend gave them) and scores, per (table,
mechanism, rate), NRMSE over the hidden cells of:

- ``engine``: the point estimate users get;
- ``chosen``: the chosen weights recomputed here (the engine's before its clamp to the column's reach: a check);
- ``network`` and each input alone;
- ``best single``: per column the one estimate of least error on the hidden cells (an oracle);
- ``oracle blend``: per column the grid's weights of least error on the hidden cells (an oracle: the most any
  choice of weights could get from these inputs);
- each input ``own level`` and ``oracle blend own level``: the same with every input at its own level (no shift to
  the network's level over the column's unknown cells, ``inference.read_no_shift``); ``oracle level choice``: per
  column the better of the two oracles;
- MissForest-like in the same process on the same masks.

    python benchmarks/results/blend_headroom.py [--seeds 0] [--rates 0.1,0.3,0.5] [CHECKPOINT]   # ~7 min a seed

Session 40's runs (results/imputation.md has their tables): blend_headroom_before.csv before the extrapolated trees
joined the blend (and before the own-level columns), blend_headroom.csv after, blend_headroom_own_level.csv after
with every column's inputs at their own level (``inference.LEVEL_AGREEMENT`` set to 1e9 around ``main()``). Session 48
passes the blend's Gaussian level (``blend_with_inputs``' ``gaussian``, session 46's departures) through the capture.
"""

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from common import (
    REAL_TABLES,
    diffusion_imputer,
    load_real_table,
    make_mask,
    missforest_imputer,
    resolve_checkpoint,
)

from icl_diffusion import inference

CAPTURED, KEYS = [], []


def all_inputs_fitted(original):
    """``input_point`` with every engine input fitted: a zero weight multiplies a real estimate, not a stand-in."""

    def wrapper(*args, **kwargs):
        kwargs["fitted"] = None
        return original(*args, **kwargs)

    return wrapper


def recording(original):
    """``choose_key_rows`` that records its choice: the engine's rows are the key rows and those with a cell to impute."""

    def wrapper(*args, **kwargs):
        KEYS.append(original(*args, **kwargs).numpy())
        return KEYS[-1]

    return wrapper


def capturing(original):
    def wrapper(x0, inputs, known, is_cat, weights, level_rows=None, own_level=None, gaussian=None):
        CAPTURED.append({"x0": x0, "inputs": inputs, "known": known, "is_cat": is_cat, "weights": weights,
                         "level_rows": level_rows, "own_level": own_level, "gaussian": gaussian})
        return original(x0, inputs, known, is_cat, weights, level_rows, own_level, gaussian)

    return wrapper


def unit_maps(chosen: torch.Tensor, known: torch.Tensor, x_in: np.ndarray, engine: np.ndarray) -> np.ndarray:
    """(2, F): per column the affine map (scale, shift) from the engine's units to the benchmark's, fixed by its
    known cells, or where they hold one value (a 0/1 column whose ones are all hidden) by its unknown cells (the
    chosen blend against the engine's output)."""
    e, k = chosen.double().cpu().numpy(), known.cpu().numpy()
    maps = np.empty((2, x_in.shape[1]))
    for j in range(x_in.shape[1]):
        src, dst = (e[k[:, j], j], x_in[k[:, j], j]) if np.ptp(x_in[k[:, j], j]) > 0 else (e[~k[:, j], j],
                                                                                            engine[~k[:, j], j])
        maps[:, j] = np.polyfit(src, dst, 1)
    return maps


def scores(c: dict, x_in: np.ndarray, engine: np.ndarray, truth: np.ndarray, missing: np.ndarray,
           names: list[str]) -> dict:
    blend = inference.blend_with_inputs
    x0, inputs, known, is_cat = c["x0"], c["inputs"], c["known"], c["is_cat"]
    for keys in KEYS:  # the engine's rows (R of the table's N)
        rows = np.union1d(keys, np.flatnonzero(missing.any(1)))
        if len(rows) == len(x0):
            break
    else:
        raise RuntimeError("the engine's rows not found")
    x_in, engine, truth, missing = x_in[rows], engine[rows], truth[rows], missing[rows]
    chosen = blend(x0, inputs, known, is_cat, c["weights"], c["level_rows"], c["own_level"], c["gaussian"])
    maps = unit_maps(chosen, known, x_in, engine)
    unit = lambda e: maps[0] * e.double().cpu().numpy() + maps[1]
    sq = lambda e: np.where(missing, (unit(e) - truth) ** 2, 0.0).sum(0)
    n_in = 1 + len(inputs)
    f = x0.shape[1]

    def blended(w: torch.Tensor) -> torch.Tensor:
        return blend(x0, inputs, known, is_cat, w.expand(f, n_in), c["level_rows"], c["own_level"], c["gaussian"])

    out = {"chosen": sq(chosen)}
    singles = {}
    for k, name in enumerate(names):
        w = torch.zeros(n_in, dtype=torch.float64)
        w[k] = 1.0
        singles[name] = sq(blended(w))
    out.update(singles)
    out["best single"] = np.min(np.stack(list(singles.values())), 0)
    grid = inference.input_grid(n_in)
    out["oracle blend"] = np.min(np.stack([sq(blended(w)) for w in grid]), 0)
    # The same with every input at its own level (``own_level`` everywhere: no shift to the network's level).
    own = torch.ones_like(c["own_level"])
    for k, name in enumerate(names[1:], 1):
        out[f"{name} own level"] = sq(torch.where(known, x0, inputs[k - 1]))
    out["oracle blend own level"] = np.min(np.stack([
        sq(blend(x0, inputs, known, is_cat, w.expand(f, n_in), c["level_rows"], own, c["gaussian"])) for w in grid]), 0)
    out["oracle level choice"] = np.minimum(out["oracle blend"], out["oracle blend own level"])
    cells = missing.sum()  # every hidden cell is in the engine's rows
    return {k: float(np.sqrt(v.sum() / cells)) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint", nargs="?")
    p.add_argument("--seeds", default="0")
    p.add_argument("--rates", default="0.1,0.3,0.5")
    p.add_argument("--out", default=str(Path(__file__).with_suffix(".csv")))
    args = p.parse_args()
    torch.set_num_threads(1)
    pretrained, _, _ = resolve_checkpoint(args.checkpoint)
    names = ["network", *pretrained.model.closed_form_inputs, *inference.ENGINE_INPUTS]
    inference.input_point = all_inputs_fitted(inference.input_point)
    inference.blend_with_inputs = capturing(inference.blend_with_inputs)
    inference.choose_key_rows = recording(inference.choose_key_rows)
    icl, mf = diffusion_imputer(pretrained), missforest_imputer()
    rows = []
    for seed in map(int, args.seeds.split(",")):
        for key in REAL_TABLES:
            t = load_real_table(key, max_rows=1000)
            for mech in ("mcar", "mar", "mnar"):
                for rate in map(float, args.rates.split(",")):
                    rng = np.random.default_rng([seed, zlib.crc32(f"{t.name}/{mech}/{rate}".encode())])
                    missing = make_mask(t.x, mech, rate, rng)
                    x_in = np.where(missing, np.nan, t.x)
                    CAPTURED.clear()
                    KEYS.clear()
                    engine = icl(x_in, seed)
                    if len(CAPTURED) != 1:
                        raise RuntimeError(f"{len(CAPTURED)} blends captured on {key} {mech} {rate}")
                    row = {"table": key, "mechanism": mech, "rate": rate, "seed": seed,
                           "engine": float(np.sqrt(np.mean((engine[missing] - t.x[missing]) ** 2))),
                           **scores(CAPTURED[0], x_in, engine, t.x, missing, names),
                           "missforest": float(np.sqrt(np.mean((mf(x_in, seed)[missing] - t.x[missing]) ** 2)))}
                    rows.append(row)
                    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                          flush=True)
    d = pd.DataFrame(rows)
    d.to_csv(args.out, index=False)
    metrics = ["engine", "chosen", "oracle blend", "oracle blend own level", "oracle level choice", "best single",
               *names, *(f"{n} own level" for n in names[1:]), "missforest"]
    print("\nmean NRMSE over rows (ratio to MissForest-like's mean)")
    for m in metrics:
        print(f"  {m:14s} {d[m].mean():.4f}  ({d[m].mean() / d.missforest.mean():.3f}x)")
    print("\nby table (mean over mechanisms and rates)")
    print(d.groupby("table")[["engine", "oracle blend", "best single", "missforest"]].mean().round(3).to_string())
    print("\nby mechanism")
    print(d.groupby("mechanism")[["engine", "oracle blend", "best single", "missforest"]].mean().round(3).to_string())


if __name__ == "__main__":
    main()
