"""Session 40: seconds of the point estimate with and without the extrapolated trees (``inference.ENGINE_INPUTS``'
"extrapolated"), best of 3, alternating in one process, one thread: a 1,000 x 20 Gaussian table (30% MCAR, as
point_estimate_time.py's), AER/Guns (1,000 rows, 30% MAR) and Boston (30% MCAR).

    python benchmarks/results/extrapolated_cost.py
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from common import gaussian_table, load_real_table, make_mask, resolve_checkpoint

from icl_diffusion import DiffusionImputer, inference


def main() -> None:
    torch.set_num_threads(1)
    pretrained, _, _ = resolve_checkpoint(None)
    cases = [("gaussian 1,000 x 20", gaussian_table(1000, 20, n_factors=5, seed=0).x, "mcar"),
             ("guns", load_real_table("guns", max_rows=1000).x, "mar"), ("boston", load_real_table("boston").x, "mcar")]
    full = inference.ENGINE_INPUTS
    for name, x, mech in cases:
        missing = make_mask(x, mech, 0.3, np.random.default_rng(0))
        x_in = np.where(missing, np.nan, x)
        DiffusionImputer(checkpoint=pretrained, random_state=0).fit_transform(x_in[:100])  # warm-up
        seconds = {False: [], True: []}
        for _ in range(3):
            for on in (False, True):
                inference.ENGINE_INPUTS = full if on else tuple(i for i in full if i != "extrapolated")
                start = time.perf_counter()
                DiffusionImputer(checkpoint=pretrained, random_state=0).fit_transform(x_in)
                seconds[on].append(time.perf_counter() - start)
        inference.ENGINE_INPUTS = full
        print(f"{name}: without {min(seconds[False]):.2f} s, with {min(seconds[True]):.2f} s", flush=True)


if __name__ == "__main__":
    main()
