"""Multiple imputation: are the draws worth their cost? Calibration and seconds of 20 imputations.

On Gaussian tables the exact conditional distribution of every missing cell is known (mean and variance
under the table's true covariance), so the draws can be judged against it:

- ``mean/oracle``: RMSE of the mean of the draws over the RMSE of the exact conditional mean (1.0 optimal);
- ``spread``: mean std of the draws over the mean exact conditional std (1.0 = right width; < 1 overconfident);
- ``cover90``: share of true values inside the draws' 5%-95% range (0.9 = calibrated; with 20 draws the
  empirical range of a perfect sampler covers ~0.86);
- ``CRPS``: the continuous ranked probability score of the draws (lower is better; a proper score, so it
  rewards both accuracy and calibration); ``oracle CRPS`` is that of the exact Gaussian.

On real tables (no oracle) only cover90 and CRPS are reported. Peers run in the same process on the same
masks: MICE with posterior sampling (IterativeImputer(sample_posterior=True), one seed per draw).

    python benchmarks/draws.py                       # ~15 min on 1 thread
    python benchmarks/draws.py --steps 2,5,10 --variance-mix 0.5 --seeds 0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/draws.py`

from benchmarks.common import gaussian_table, load_real_table, make_mask, markdown_table, resolve_checkpoint


def crps(draws: np.ndarray, truth: np.ndarray) -> float:
    """Mean CRPS over cells of an ensemble (D, n) against truth (n,): E|X - y| - 0.5 E|X - X'|."""
    d = np.sort(draws, axis=0)
    D = d.shape[0]
    # E|X - X'| of an ensemble from its order statistics: 2 / D^2 * sum_i (2i - D - 1) x_(i).
    weights = (2 * np.arange(1, D + 1) - D - 1)[:, None]
    spread = 2 * (weights * d).sum(0) / D**2
    return float((np.abs(d - truth).mean(0) - 0.5 * spread).mean())


def gaussian_crps(mean: np.ndarray, std: np.ndarray, truth: np.ndarray) -> float:
    from scipy.stats import norm

    z = (truth - mean) / std
    return float((std * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))).mean())


def icl_draws(pretrained, n_steps: int, n_draws: int, variance_mix: float | None = None):
    """DiffusionImputer.sample with the conditional sampler (``variance_mix``: None = the default)."""

    def draw(x: np.ndarray, seed: int) -> np.ndarray:
        from icl_diffusion.estimators import DiffusionImputer
        from icl_diffusion.sampling import VARIANCE_MIX

        imp = DiffusionImputer(checkpoint=pretrained, device="cpu", random_state=seed, method="conditional",
                               n_steps=n_steps, variance_mix=VARIANCE_MIX if variance_mix is None else variance_mix)
        return np.stack(imp.fit(x).sample(x, n_imputations=n_draws))

    return draw


def mice_draws(n_draws: int):
    def draw(x: np.ndarray, seed: int) -> np.ndarray:
        from sklearn.experimental import enable_iterative_imputer  # noqa: F401
        from sklearn.impute import IterativeImputer

        return np.stack([IterativeImputer(max_iter=10, sample_posterior=True, random_state=seed * 1000 + d)
                         .fit_transform(x) for d in range(n_draws)])

    return draw


def score(draws: np.ndarray, x: np.ndarray, missing: np.ndarray, table) -> dict[str, float]:
    y, ens = x[missing], draws[:, missing]
    lo, hi = np.quantile(ens, [0.05, 0.95], axis=0)
    out = {"cover90": float(((y >= lo) & (y <= hi)).mean()), "CRPS": crps(ens, y)}
    if table.cov is not None:
        import torch

        from priors.gaussian import conditional_gaussian

        mean, var = conditional_gaussian(torch.from_numpy(table.mean), torch.from_numpy(table.cov),
                                         torch.from_numpy(x), torch.from_numpy(~missing))
        mean, std = mean.numpy()[missing], var.numpy()[missing] ** 0.5
        rmse = lambda e: float(np.sqrt(np.mean(e**2)))
        out["mean/oracle"] = rmse(ens.mean(0) - y) / rmse(mean - y)
        out["spread"] = float(ens.std(0).mean() / std.mean())
        out["oracle CRPS"] = gaussian_crps(mean, std, y)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--steps", default="5,10", help="conditional-sampler steps to compare")
    p.add_argument("--variance-mix", default="0,0.5", help="sampler variance mixes to compare (0 = beta_tilde)")
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="CSV of every run")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    pretrained, desc, _ = resolve_checkpoint(args.checkpoint)
    print(f"checkpoint: {desc}; {args.draws} draws; {args.threads} thread(s)\n", flush=True)
    methods = {f"icl conditional {s} steps, variance mix {v}": icl_draws(pretrained, int(s), args.draws, float(v))
               for s in args.steps.split(",") for v in args.variance_mix.split(",")}
    methods["MICE sample_posterior"] = mice_draws(args.draws)
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        tables = [gaussian_table(500, 10, seed=seed), load_real_table("boston")]
        for table in tables:
            for mech in ("mcar", "mar"):
                missing = make_mask(table.x, mech, 0.3, np.random.default_rng(seed))
                x_in = np.where(missing, np.nan, table.x)
                for name, draw in methods.items():
                    start = time.perf_counter()
                    draws = draw(x_in, seed)
                    secs = time.perf_counter() - start
                    assert np.array_equal(draws[:, ~missing], np.broadcast_to(table.x[~missing], draws[:, ~missing].shape))
                    runs.append({"table": table.name, "mech": mech, "seed": seed, "method": name, "seconds": secs,
                                 **score(draws, table.x, missing, table)})
                    print(runs[-1], flush=True)
    keys = ["mean/oracle", "spread", "cover90", "CRPS", "oracle CRPS", "seconds"]
    rows = []
    for table in dict.fromkeys(r["table"] for r in runs):
        for mech in ("mcar", "mar"):
            for name in methods:
                sel = [r for r in runs if (r["table"], r["mech"], r["method"]) == (table, mech, name)]
                rows.append([table, mech, name, *(f"{np.mean([r[k] for r in sel]):.3f}" if k in sel[0] else ""
                                                  for k in keys)])
    print(f"\n30% missing, mean over seeds {args.seeds}\n")
    print(markdown_table(["table", "mech", "method", *keys], rows))
    if args.out:
        import csv

        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=sorted({k for r in runs for k in r}))
            w.writeheader()
            w.writerows(runs)


if __name__ == "__main__":
    main()
