"""Session 12 experiment (not adopted): blend the shipped point estimate with the nearest-rows estimates per column,
the weights chosen on held-out observed cells. Run from the repository root:

    python benchmarks/results/neighbour_blend.py boston,auto

For each table, mechanism (30%, seed 0, imputation.py's masks): NRMSE of the network's point estimate, of the
smooth and sharp nearest-rows estimates alone (``neighbour_feature.neighbour_estimates`` over every row), and of
their per-column blend (weights on a grid, chosen on 10% of each column's observed cells hidden and imputed both
ways, with pseudo-cells pulling a column toward the table's choice, as ``local_context.choose_weights``).
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import load_real_table, make_mask
from icl_diffusion import DiffusionImputer
from icl_diffusion.checkpoint import load_pretrained
from icl_diffusion.neighbour_feature import neighbour_estimates

GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
PRIOR_CELLS = 20
PRETRAINED = load_pretrained()


def estimates(x: np.ndarray, known: np.ndarray) -> dict:
    """{"net", "smooth", "sharp"}: (N, F) estimates of every cell in x's units from its ``known`` cells."""
    observed = np.where(known, x, np.nan)
    mean, std = np.nanmean(observed, 0), np.nanstd(observed, 0)
    z = torch.as_tensor(np.where(known, (x - mean) / std, 0.0), dtype=torch.float32)[None]
    F = x.shape[1]
    smooth, sharp, _, _ = neighbour_estimates(z, torch.as_tensor(known)[None], torch.zeros(1, F, dtype=torch.bool),
                                              torch.zeros(1, F, dtype=torch.long), 2)
    net = DiffusionImputer(checkpoint=PRETRAINED, random_state=0).fit_transform(observed)
    return {"net": net, "smooth": smooth[0].double().numpy() * std + mean, "sharp": sharp[0].double().numpy() * std + mean}


def blend(ests: dict, weights: list) -> np.ndarray:
    """Per column j: (1 - a - b) net + a smooth + b sharp, (a, b) = weights[j]."""
    return np.stack([(1 - a - b) * ests["net"][:, j] + a * ests["smooth"][:, j] + b * ests["sharp"][:, j]
                     for j, (a, b) in enumerate(weights)], 1)


def choose(ests: dict, x: np.ndarray, hold: np.ndarray) -> list:
    """Per column the (a, b) of least held-out squared error plus PRIOR_CELLS cells of the table's mean loss."""
    combos = [(a, b) for a in GRID for b in GRID if a + b <= 1]
    loss = np.stack([np.where(hold, (blend(ests, [c] * x.shape[1]) - x) ** 2, 0).sum(0) for c in combos])
    per_cell = loss.sum(1) / max(hold.sum(), 1)
    return [combos[k] for k in (loss + PRIOR_CELLS * per_cell[:, None]).argmin(0)]


def main() -> None:
    for name in sys.argv[1].split(","):
        x = load_real_table(name, max_rows=1000).x
        for mechanism in ("mcar", "mar", "mnar"):
            missing = make_mask(x, mechanism, 0.3, np.random.default_rng(0))
            known = ~missing
            rng, hold = np.random.default_rng(1), np.zeros_like(known)
            for j in range(x.shape[1]):
                observed = np.flatnonzero(known[:, j])
                k = min(max(10, round(0.1 * len(observed))), len(observed) - 2)
                hold[rng.choice(observed, k, replace=False), j] = True
            ests = estimates(x, known)
            weights = choose(estimates(x, known & ~hold), x, hold)
            scores = {k: np.sqrt(((v - x)[missing] ** 2).mean()) for k, v in {**ests, "blend": blend(ests, weights)}.items()}
            print(f"{name:10s} {mechanism} 30%: " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items())
                  + f"  weights (smooth, sharp) {weights}", flush=True)


if __name__ == "__main__":
    main()
