"""One mask of the real grid imputed at two contexts: NRMSE per column, the network alone, and the blend's weights
(``inference.input_weights``' choice: columns network, its closed-form inputs, then the engine's). Session 51:
quakes MAR 30% seed 5, where the wider context of ``SamplerConfig.context_cells`` loses 0.3
(benchmarks/results/context_rows.md).

    python benchmarks/results/context_blend_check.py [TABLE MECHANISM RATE SEED]
"""

import sys
import zlib
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from common import diffusion_imputer, load_real_table, make_mask, nrmse

from icl_diffusion import inference, load_pretrained

table, mech, rate, seed = (sys.argv[1:5] if len(sys.argv) > 4 else ("quakes", "mar", "0.3", "5"))
rate, seed = float(rate), int(seed)
torch.set_num_threads(1)
torch.set_printoptions(precision=3, sci_mode=False)
choose = inference.input_weights


def printed(*args, **kwargs):
    blend = choose(*args, **kwargs)
    print("  blend weights (columns: network,", ", ".join((*pretrained.model.closed_form_inputs,
                                                            *inference.ENGINE_INPUTS)) + ")")
    print(blend.weights if blend is not None else None)
    return blend


inference.input_weights = printed
t = load_real_table(table, max_rows=1000)
rng = np.random.default_rng([seed, zlib.crc32(f"{t.name}/{mech}/{rate}".encode())])  # imputation.py's mask
missing = make_mask(t.x, mech, rate, rng)
x_in = np.where(missing, np.nan, t.x)
pretrained = load_pretrained()
for label, settings in (("512 key rows (context_cells=0)", {"context_cells": 0}), ("the default", {})):
    for blend in (True, False):
        print(f"{label}, blend_inputs={blend}:")
        out = np.asarray(diffusion_imputer(pretrained, blend_inputs=blend, **settings)(x_in, seed), dtype=float)
        columns = [float(np.sqrt(np.mean((out - t.x)[missing[:, j], j] ** 2))) if missing[:, j].any() else None
                   for j in range(t.x.shape[1])]
        rounded = [None if c is None else round(c, 3) for c in columns]
        print(f"  NRMSE {nrmse(out, t.x, missing):.4f}, per column", rounded)
