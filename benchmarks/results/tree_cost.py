"""Experiment (session 27): seconds of one ``tree_regression.tree_estimates`` fit on a random wide table (five
factors plus noise, 20% of cells missing), one thread: the trees' share of a wide table's point estimate.

    python benchmarks/results/tree_cost.py            # 2,048 x 100 (a whole table's trees) and 512 x 100 (key rows)

benchmarks/results/imputation.md, session 27 (``MAX_FEATURES``), has the runs.
"""

import time

import numpy as np
import torch

from icl_diffusion.tree_regression import tree_estimates

torch.set_num_threads(1)
rng = np.random.default_rng(0)
for n, f in ((2048, 100), (512, 100)):
    x = torch.as_tensor(rng.standard_normal((n, 5)) @ rng.standard_normal((5, f)) + rng.standard_normal((n, f)))
    known = torch.as_tensor(rng.random((n, f)) > 0.2)
    start = time.perf_counter()
    tree_estimates(torch.where(known, x, 0.0), known, torch.zeros(f, dtype=torch.bool), torch.arange(n))
    print(f"{n} x {f}: {time.perf_counter() - start:.1f} s", flush=True)
