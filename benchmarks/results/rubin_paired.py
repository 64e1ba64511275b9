"""Paired Rubin's-rules runs of session 28 (benchmarks/results/rubin_coverage.md): the same MAR tables of
benchmarks/rubin_coverage.py (numeric x1, then categorical x1), icl-diffusion's MI only, K = 10, per variant.

    python benchmarks/results/rubin_paired.py OUT.csv off=0,0,0 matched=1,1,0 pd=0,1,1 mpd=1,1,1

A variant is NAME=S,T,P: the spread's calibration cells drawn with the missingness odds (S,
``inference.CALIBRATION_MATCHED``), the temperature's held cells too (T, ``TEMPERATURE_MATCHED``), and the draws'
bootstrap shifts (P, ``parameter_draws``). ``REPS`` (env, default 100): tables per kind.
"""
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rubin_coverage import B, C, as_array, as_frame, pooled, simulate

from icl_diffusion import DiffusionImputer, inference, load_pretrained

out, variants = sys.argv[1], sys.argv[2:]
reps = int(os.environ.get("REPS", "100"))
pretrained = load_pretrained()
rows = []
for categorical in (False, True):
    for seed in range(reps):
        full, masked = simulate(300, "mar", 0.25, np.random.default_rng(seed), categorical)
        given = as_frame(masked) if categorical else masked
        back = as_array if categorical else np.asarray
        for variant in variants:
            name, flags = variant.split("=")
            spread, temperature, shifts = (f == "1" for f in flags.split(","))
            inference.CALIBRATION_MATCHED, inference.TEMPERATURE_MATCHED = spread, temperature
            imputer = DiffusionImputer(checkpoint=pretrained, device="cpu", random_state=seed,
                                       parameter_draws=shifts).fit(given)
            est, se, lo, hi = pooled(np.stack([back(d) for d in imputer.sample(given, n_imputations=10)]))
            for coef, j, truth in (("x1", 0, B), ("x2", 1, C)):
                rows.append({"categorical": categorical, "seed": seed, "variant": name, "coef": coef, "est": est[j],
                             "se": se[j], "covered": lo[j] <= truth <= hi[j], "error": est[j] - truth})
    pd.DataFrame(rows).to_csv(out, index=False)
table = pd.DataFrame(rows).groupby(["categorical", "coef", "variant"])
print(table.agg(bias=("error", "mean"), sd=("est", "std"), se=("se", "mean"), coverage=("covered", "mean")).round(3))
