"""Per-column view of the point estimate's blend on one grid mask (session 48): each numeric column's chosen weights
(network, then its closed-form and the engine's inputs), own-level flag, and the squared error over its hidden cells
of the chosen blend and of each input alone (at the blend's level), through ``blend_headroom.py``'s capture. With a
column index, that column's twelve worst cells: truth and every estimate.

    python benchmarks/results/blend_columns.py TABLE MECHANISM RATE SEED [COLUMN]    # e.g. guns mar 0.1 0 1
"""
import sys
import zlib
from pathlib import Path

import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1]),
                str(Path(__file__).resolve().parents[2])]

import blend_headroom as bh
from common import diffusion_imputer, load_real_table, make_mask, resolve_checkpoint

from icl_diffusion import inference

torch.set_num_threads(1)
key, mech, rate, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
pre, _, _ = resolve_checkpoint(None)
names = ["network", *pre.model.closed_form_inputs, *inference.ENGINE_INPUTS]
inference.input_point = bh.all_inputs_fitted(inference.input_point)
inference.blend_with_inputs = bh.capturing(inference.blend_with_inputs)
inference.choose_key_rows = bh.recording(inference.choose_key_rows)
t = load_real_table(key, max_rows=1000)
rng = np.random.default_rng([seed, zlib.crc32(f"{t.name}/{mech}/{rate}".encode())])
missing = make_mask(t.x, mech, rate, rng)
x_in = np.where(missing, np.nan, t.x)
engine = diffusion_imputer(pre)(x_in, seed)
c = bh.CAPTURED[0]
for keys in bh.KEYS:
    rows = np.union1d(keys, np.flatnonzero(missing.any(1)))
    if len(rows) == len(c["x0"]):
        break
xr, er, tr, mr = x_in[rows], engine[rows], t.x[rows], missing[rows]
f, n_in = c["x0"].shape[1], 1 + len(c["inputs"])


def blend(weights: torch.Tensor) -> torch.Tensor:
    """The captured blend with per-column ``weights`` (F, n_in), at the engine's levels."""
    return inference.blend_with_inputs(c["x0"], c["inputs"], c["known"], c["is_cat"], weights, c["level_rows"],
                                       c["own_level"], c["gaussian"])


chosen = blend(c["weights"])
maps = bh.unit_maps(chosen, c["known"], xr, er)
alone = {name: maps[0] * blend(torch.eye(n_in, dtype=torch.float64)[k].expand(f, n_in)).double().numpy() + maps[1]
         for k, name in enumerate(names)}  # each input alone, in the benchmark's units
estimates = {"chosen": maps[0] * chosen.double().numpy() + maps[1], **alone}
bh.CAPTURED.clear()
print(key, mech, rate, seed, "columns", getattr(t, "columns", None))
print("weights in the order", names)
for j in np.flatnonzero(mr.any(0)):
    errors = " ".join(f"{k[:5]} {np.sum((e[mr[:, j], j] - tr[mr[:, j], j]) ** 2):7.1f}" for k, e in estimates.items())
    print(f"col {j} n {mr[:, j].sum():3d} own {bool(c['own_level'][j])} w {c['weights'][j].numpy().round(2)} | "
          f"{errors}")
if len(sys.argv) > 5:
    j = int(sys.argv[5])
    m = mr[:, j]
    worst = np.argsort(-(estimates["chosen"][m, j] - tr[m, j]) ** 2)[:12]
    print("observed range of the column", np.nanmin(xr[:, j]), np.nanmax(xr[:, j]))
    for i in worst:
        print(f"truth {tr[m, j][i]:+.2f} " + " ".join(f"{k[:5]} {e[m, j][i]:+.2f}" for k, e in estimates.items()))
