"""Session 44: the engine's trees alone (``tree_regression.tree_estimates``, no network, no blend) against
MissForest-like on the grid's masks, one chain of sweeps against the mean of several.

Each real table (at most 1,000 rows) gets imputation.py's seeded mask; its observed cells are standardized, the
unknown ones filled with the Gaussian conditional mean (EM until it converges, as the engine's input), and the trees
run on every row with each setting of (``TREES``, ``CHAINS``); NRMSE over the hidden cells, seconds per call.

    python benchmarks/results/tree_chains.py [TABLES] [MECHANISMS] [RATES] [SEEDS]
    python benchmarks/results/tree_chains.py guns,boston,quakes,auto,college mcar,mar,mnar 0.1,0.3 2

Session 44's numbers (means over the command above's 30 masks) came from this script's prototype, whose chains were
seeded 1,000 apart (``CHAIN_SEED`` is 7,919 here), so a rerun gives the same picture, not the same digits:
MissForest-like 0.7108; one chain of (10, 10, 30) trees 0.7049; two such chains averaged 0.6949; six chains of
(2, 2, 5) 0.6944; three of (4, 4, 10) 0.6984. The prototype also ran, on seeds 0-2 of a few masks, one chain of
(50,) * 5 trees (AER/Guns MCAR 30% seed 0: 0.358 against one chain's 0.380 and MissForest-like's 0.303) and random
forests' split candidates ("sqrt", (10, 10, 10, 10, 50): 0.7159 over the 30 masks, behind one chain): averaging
chains, not more trees in one chain or sparser splits, is what pays.
"""

import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import load_real_table, make_mask, missforest_imputer, nrmse
from icl_diffusion import tree_regression
from icl_diffusion.gaussian_feature import EM_MAX_ITERS, EM_TOL, gaussian_estimate, table_gaussian

SETTINGS = {"1 x (10, 10, 30)": ((10, 10, 30), 1), "2 x (10, 10, 30)": ((10, 10, 30), 2),
            "3 x (4, 4, 10)": ((4, 4, 10), 3), "6 x (2, 2, 5)": ((2, 2, 5), 6), "10 x (1, 1, 3)": ((1, 1, 3), 10)}


def trees_alone(z: np.ndarray, seen: np.ndarray, trees: tuple, chains: int) -> np.ndarray:
    """The trees' estimate of the standardized table ``z`` (NaN where unknown) with ``seen`` (N, D) cells."""
    x, known = torch.as_tensor(np.nan_to_num(z))[None], torch.as_tensor(seen)[None]
    no_cat = torch.zeros(1, z.shape[1], dtype=torch.bool)
    mean, cov = table_gaussian(x, known, no_cat, torch.ones(1, z.shape[0], dtype=torch.bool), EM_MAX_ITERS, EM_TOL)
    filled = gaussian_estimate(x, known, no_cat, cov, mean)[0].float()
    saved = tree_regression.TREES, tree_regression.CHAINS
    tree_regression.TREES, tree_regression.CHAINS = trees, chains
    try:
        return tree_regression.tree_estimates(filled, known[0], no_cat[0], torch.arange(z.shape[0])).double().numpy()
    finally:
        tree_regression.TREES, tree_regression.CHAINS = saved


def main(argv: list[str]) -> None:
    defaults = ["guns,boston,quakes,auto,college", "mcar,mar,mnar", "0.1,0.3", "2"]
    tables, mechanisms, rates, seeds = argv[:4] + defaults[len(argv[:4]):]
    torch.set_num_threads(1)
    missforest = missforest_imputer()
    scores: dict[str, list[float]] = {}
    for key in tables.split(","):
        table = load_real_table(key, max_rows=1000)
        for mechanism in mechanisms.split(","):
            for rate in map(float, rates.split(",")):
                for seed in map(int, seeds.split(",")):
                    rng = np.random.default_rng([seed, zlib.crc32(f"{table.name}/{mechanism}/{rate}".encode())])
                    missing = make_mask(table.x, mechanism, rate, rng)
                    x = np.where(missing, np.nan, table.x)
                    mu, sd = np.nanmean(x, 0), np.nanstd(x, 0) + 1e-12
                    row = {"MissForest-like": nrmse(missforest(x, seed), table.x, missing)}
                    for label, (trees, chains) in SETTINGS.items():
                        start = time.perf_counter()
                        estimate = trees_alone((x - mu) / sd, ~missing, trees, chains) * sd + mu
                        row[label] = nrmse(estimate, table.x, missing)
                        row[label + " s"] = time.perf_counter() - start
                    for name, value in row.items():
                        scores.setdefault(name, []).append(value)
                    print(key, mechanism, rate, seed, "  ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    print("\nmean over the masks:")
    for name, values in scores.items():
        print(f"  {name}: {np.mean(values):.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
