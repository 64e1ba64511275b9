"""Session 50: how much of the point estimate's error sits in unknown cells beyond the rows that know their column,
and what a blend chosen for those cells alone could gain (issue 13).

A hidden cell (i, j) counts as *beyond* when row i has a known numeric cell outside the range of that column's
known cells among the rows that know column j: every input fitted on those rows (the trees, the nearest rows)
extrapolates there. On the grid's masks of one seed (``blend_headroom.py``'s capture of the final call), per mask:
the engine's NRMSE, the share of hidden cells beyond, and the NRMSE if those cells alone took, per column, the grid
blend of least error on them (an oracle: chosen on the cells it is scored on).

    python benchmarks/results/extreme_headroom.py [SEED]    # ~7 min on one thread

Session 50 (seed 0, shipped weights, session 48's engine): 6.6% of the hidden cells lie beyond; engine 0.7148 ->
oracle 0.6987 (+0.016), nearly half of it AER/Guns MAR 10% / 30% (0.509 -> 0.276, 0.539 -> 0.383: the District of
Columbia's violent crime, +5 to +7 sd against an observed maximum of +2.1); seed 1: 6.1% beyond, 0.7146 -> 0.7027.
A blend chosen on observed cells held at each end of every other column (two rows an end) did not find it: those rows
lie just beyond the rest, where the trees and the nearest rows still do well, and it chose them (AER/Guns MAR 10%
0.509 -> 0.580, MCAR 10% 0.247 -> 0.274); see benchmarks/results/imputation.md, session 50.
"""
import sys
import zlib
from pathlib import Path

import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1]),
                str(Path(__file__).resolve().parents[2])]

import blend_headroom as bh
from common import REAL_TABLES, diffusion_imputer, load_real_table, make_mask, resolve_checkpoint

from icl_diffusion import inference


def beyond(x: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(N, F) bool: the unknown cells whose row has a known cell outside the range of that column's known cells among
    the rows that know the cell's column."""
    out = np.zeros_like(known)
    for j in range(x.shape[1]):
        rows = known[:, j]
        if rows.all() or not rows.any():
            continue
        shown = known & rows[:, None]
        lo = np.where(shown, x, np.inf).min(0)
        hi = np.where(shown, x, -np.inf).max(0)
        out[:, j] = ~rows & (known & ((x < lo) | (x > hi))).any(1)
    return out


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    torch.set_num_threads(1)
    pretrained, _, _ = resolve_checkpoint(None)
    blend = inference.blend_with_inputs
    inference.input_point = bh.all_inputs_fitted(inference.input_point)
    inference.blend_with_inputs = bh.capturing(blend)
    inference.choose_key_rows = bh.recording(inference.choose_key_rows)
    icl = diffusion_imputer(pretrained)
    rows_out = []
    for key in REAL_TABLES:
        t = load_real_table(key, max_rows=1000)
        for mech in ("mcar", "mar", "mnar"):
            for rate in (0.1, 0.3, 0.5):
                rng = np.random.default_rng([seed, zlib.crc32(f"{t.name}/{mech}/{rate}".encode())])
                missing = make_mask(t.x, mech, rate, rng)
                x_in = np.where(missing, np.nan, t.x)
                bh.CAPTURED.clear()
                bh.KEYS.clear()
                engine = icl(x_in, seed)
                c = bh.CAPTURED[0]
                x0, inputs, known, is_cat = c["x0"], c["inputs"], c["known"], c["is_cat"]
                for keys in bh.KEYS:  # the engine's rows (R of the table's N)
                    rows = np.union1d(keys, np.flatnonzero(missing.any(1)))
                    if len(rows) == len(x0):
                        break
                x_r, engine_r, truth, hidden = x_in[rows], engine[rows], t.x[rows], missing[rows]
                chosen = blend(x0, inputs, known, is_cat, c["weights"], c["level_rows"], c["own_level"], c["gaussian"])
                maps = bh.unit_maps(chosen, known, x_r, engine_r)
                far = beyond(np.where(hidden, 0.0, x_r), ~hidden)
                squared = (engine_r - truth) ** 2
                best = np.where(far, squared, 0.0).sum(0)  # (F,): the engine's, then the least of the grid's
                f, n_in = x0.shape[1], 1 + len(inputs)
                for w in inference.input_grid(n_in):
                    e = blend(x0, inputs, known, is_cat, w.expand(f, n_in), c["level_rows"], c["own_level"],
                              c["gaussian"])
                    e = maps[0] * e.double().cpu().numpy() + maps[1]
                    best = np.minimum(best, np.where(far, (e - truth) ** 2, 0.0).sum(0))
                cells = hidden.sum()
                total = np.where(hidden, squared, 0.0).sum()
                oracle = total - np.where(far, squared, 0.0).sum() + best.sum()
                rows_out.append((np.sqrt(total / cells), np.sqrt(oracle / cells), far.sum() / cells))
                print(f"{key} {mech} {rate}: engine {rows_out[-1][0]:.4f} oracle beyond {rows_out[-1][1]:.4f} "
                      f"share beyond {rows_out[-1][2]:.3f}", flush=True)
    mean = np.mean(rows_out, axis=0)
    print(f"mean over {len(rows_out)} masks: engine {mean[0]:.4f}, oracle beyond {mean[1]:.4f}, share {mean[2]:.3f}")


if __name__ == "__main__":
    main()
