"""Screen a candidate checkpoint against the shipped one, cell type by cell type, row by row (the adoption check).

New weights are adopted only when the benchmarks say they are better on every cell type. This runs
icl-diffusion alone, with the candidate's stored settings, on the same masks and splits as the shipped
checkpoint's rows committed in ``benchmarks/results/screen/<label>/`` (``--reference``), and compares them
pairwise, row by row, so that a difference smaller than the noise of the masks shows as such:

| section | rows | metric |
|---|---|---|
| ``grid`` | imputation.py's grid: 6 real tables x MCAR/MAR/MNAR x 10/30/50% x seeds 0-2 (54 x 3) | numeric NRMSE |
| ``gaussian`` | imputation.py's 500 x 10 Gaussian table, the same 9 masks, seeds 0-9 (90) | RMSE / exact conditional mean's |
| ``categorical`` | 8 mixed tables x MCAR/MAR x 10/30/50% x seeds 0-2 (144) | categorical accuracy, numeric NRMSE |
| ``prediction`` | classification.py's tables, splits 0-2 | ROC AUC (classification), R^2 (regression) |
| ``draws`` | 20 draws, Gaussian 500 x 10 / Boston / Auto x MCAR/MAR at 30% x seeds 0-1 (12) | CRPS |
| ``categorical_fresh`` (not run by default) | ``categorical``'s tables and masks at seeds 3-5 (144) | as ``categorical`` |
| ``prediction_fresh`` (not run by default) | ``prediction``'s tables at splits 3-9 | as ``prediction`` |

The shipped checkpoint was itself chosen on the default rows (it had to beat its predecessor there), so on them
any other checkpoint starts behind by the selection's luck; where a difference is within the noise, rerun it on
masks nobody was chosen on (``--sections categorical_fresh``: session 15 found the mixed tables' categorical
deficit of every candidate about halved or reversed there; ``--sections prediction_fresh`` likewise for the
targets: three splits of a 263-row table like Hitters move R^2 by 0.01 between two networks that are level over ten,
session 34).

Each section's rows go to ``--out-dir/<label>/<section>.csv`` and are reused when present, so an interrupted
screen resumes and a checkpoint is never run twice. Rows are those of the code that wrote them: after a change
to the engine or the estimators, delete the stale sections (the reference's too) or screen under a new label
(session 16: the regressor's cross-validated views made every cached R² row stale; session 18: its local
contexts did again, and the reference's prediction rows were re-recorded; so did ``snap_draws`` its draws rows,
``couple_draws`` in session 19, and in session 22 the coupling's pattern scaling against the calibration cells;
session 30's trees for categorical cells, the categorical sections; session 37's ``extrapolate`` of the regressor,
the regression rows, re-recorded by ``benchmarks/results/regression_rows.py``).
The peers (MissForest, MICE, logistic regression...) are not rerun: they are in the full benchmarks, which an
adopted checkpoint then reruns (README, "Reproduce").

    python benchmarks/screen.py runs/snaps/stage22_step2000.safetensors          # vs the shipped rows (~15 min)
    python benchmarks/screen.py soup=runs/soup.safetensors --sections grid,categorical
    python benchmarks/screen.py stage25=checkpoints/icl_diffusion_small.safetensors \\
        --out-dir benchmarks/results/screen --reference none                     # (re)record the shipped rows
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import categorical
import classification
import draws
import imputation
from common import REAL_TABLES, benchmark_mask, diffusion_imputer, make_mask, markdown_table

from icl_diffusion import load_checkpoint

SHIPPED_ROWS = Path(__file__).resolve().parent / "results" / "screen" / "stage25"
SECTIONS = ("grid", "gaussian", "categorical", "prediction", "draws")
# metric -> (section, the rows' key columns, the row filter, True when higher is better)
METRICS = {
    "numeric NRMSE, real grid": ("grid", ["dataset", "mechanism", "rate", "seed"], None, "nrmse", False),
    "Gaussian, ratio to the exact conditional mean": ("gaussian", ["mechanism", "rate", "seed"], None, "ratio",
                                                      False),
    "categorical accuracy, mixed tables": ("categorical", ["table", "mechanism", "rate", "seed"], None, "acc", True),
    "numeric NRMSE, mixed tables": ("categorical", ["table", "mechanism", "rate", "seed"], None, "nrmse", False),
    "categorical accuracy, mixed tables, seeds 3-5": ("categorical_fresh", ["table", "mechanism", "rate", "seed"],
                                                       None, "acc", True),
    "numeric NRMSE, mixed tables, seeds 3-5": ("categorical_fresh", ["table", "mechanism", "rate", "seed"], None,
                                                "nrmse", False),
    "classification ROC AUC": ("prediction", ["table", "split"], "task == 'classification'", "auc", True),
    "regression R^2": ("prediction", ["table", "split"], "task == 'regression'", "r2", True),
    "classification ROC AUC, splits 3-9": ("prediction_fresh", ["table", "split"], "task == 'classification'", "auc",
                                           True),
    "regression R^2, splits 3-9": ("prediction_fresh", ["table", "split"], "task == 'regression'", "r2", True),
    "draws' CRPS": ("draws", ["table", "mech", "seed"], None, "CRPS", False),
}


def grid_rows(pretrained, datasets: str, seeds: str) -> pd.DataFrame:
    """imputation.py's runs of the point estimate (one row per dataset, mechanism, rate, seed)."""
    args = imputation.parse_args(["--datasets", datasets, "--seeds", seeds, "--methods", "icl_point", "--threads", "1"])
    runs = imputation.run(args, pretrained)
    return runs[runs.method == "icl_point"]


def categorical_masks(seeds=(0, 1, 2)):
    """The ``categorical`` section's masks: (table key, table, mechanism, rate, seed, missing (N, F) bool, the
    numeric columns' mean and std) per mixed table, MCAR / MAR, 10 / 30 / 50% and seed."""
    for key in categorical.TABLES:
        df, _ = categorical.load_table(key, 1000)
        z, mean, std = categorical.numeric_image(df)
        for mech in ("mcar", "mar"):
            for rate in (0.1, 0.3, 0.5):
                for seed in seeds:
                    yield key, df, mech, rate, seed, benchmark_mask(z, key, mech, rate, seed), mean, std


def categorical_scores(pretrained, seeds=(0, 1, 2), **params) -> pd.DataFrame:
    """Accuracy and NRMSE of the point estimate per mixed table, mechanism, rate and seed."""
    impute = diffusion_imputer(pretrained, max_context_rows=512, **params)
    rows = []
    for key, df, mech, rate, seed, missing, mean, std in categorical_masks(seeds):
        acc, err = categorical.score(impute(df.mask(missing), seed), df, missing, mean, std)
        rows.append((key, mech, rate, seed, acc, err))
    return pd.DataFrame(rows, columns=["table", "mechanism", "rate", "seed", "acc", "nrmse"])


def prediction_scores(pretrained, splits: int = 3, first_split: int = 0, **params) -> pd.DataFrame:
    """classification.py's runs (icl only), one row per table x split (seeds first_split, ...)."""
    tables, _ = classification.load_tables(list(classification.TABLES))
    methods = classification.build_methods(pretrained, 512, **params)
    methods = {task: {"icl": methods[task]["icl"]} for task in methods}
    args = types.SimpleNamespace(splits=splits, first_split=first_split, max_train=1024)
    runs, _, _ = classification.run(args, tables, methods)
    return runs


def draw_scores(pretrained) -> pd.DataFrame:
    """draws.py's runs of the checkpoint's draws (20 per mask), 30% missing."""
    draw = draws.icl_draws(pretrained, None, 20)
    runs = []
    for seed in (0, 1):
        for table in (draws.make_table(name, seed) for name in ("gaussian500x10", "boston", "auto")):
            for mech in ("mcar", "mar"):
                missing = make_mask(table.x, mech, 0.3, np.random.default_rng(seed))
                out = draw(np.where(missing, np.nan, table.x), seed)
                runs.append({"table": table.name, "mech": mech, "seed": seed,
                             **draws.score(out, table.x, missing, table)})
    return pd.DataFrame(runs)


def section_rows(section: str, pretrained) -> pd.DataFrame:
    if section == "grid":
        return grid_rows(pretrained, ",".join(REAL_TABLES), "0,1,2")
    if section == "gaussian":
        return grid_rows(pretrained, "gaussian", ",".join(map(str, range(10))))
    if section == "categorical":
        return categorical_scores(pretrained)
    if section == "categorical_fresh":
        return categorical_scores(pretrained, seeds=(3, 4, 5))
    if section == "prediction":
        return prediction_scores(pretrained)
    if section == "prediction_fresh":
        return prediction_scores(pretrained, splits=7, first_split=3)
    if section == "draws":
        return draw_scores(pretrained)
    raise SystemExit(f"unknown section {section!r}; choose from {', '.join(SECTIONS)}, categorical_fresh, "
                     "prediction_fresh")


def rows_of(label: str, path: str, out_dir: Path, sections: list[str]) -> dict[str, pd.DataFrame]:
    """{section: rows} of one checkpoint, run where ``out_dir/label/section.csv`` does not exist yet."""
    folder = out_dir / label
    folder.mkdir(parents=True, exist_ok=True)
    pretrained = None
    out = {}
    for section in sections:
        file = folder / f"{section}.csv"
        if not file.exists():
            pretrained = pretrained or load_checkpoint(path)
            print(f"{label}: {section}...", flush=True)
            section_rows(section, pretrained).to_csv(file, index=False)
        out[section] = pd.read_csv(file)
    return out


def compare(reference: dict[str, pd.DataFrame], candidate: dict[str, pd.DataFrame]) -> tuple[list[list], bool]:
    """Markdown rows, one per metric both have, and whether the candidate is better on every one of them."""
    rows, better_everywhere = [], True
    for metric, (section, keys, query, column, higher) in METRICS.items():
        if section not in reference or section not in candidate:
            continue
        a, b = (d if query is None else d.query(query) for d in (reference[section], candidate[section]))
        pair = a[keys + [column]].merge(b[keys + [column]], on=keys, suffixes=("_ref", "_new")).dropna()
        if pair.empty:
            continue
        gain = (pair[f"{column}_new"] - pair[f"{column}_ref"]) * (1 if higher else -1)  # > 0: candidate better
        se = gain.std(ddof=1) / np.sqrt(len(gain)) if len(gain) > 1 else np.nan
        verdict = "better" if gain.mean() > 0 else "worse" if gain.mean() < 0 else "equal"
        better_everywhere &= verdict == "better"
        rows.append([metric, len(pair), f"{pair[f'{column}_ref'].mean():.4f}", f"{pair[f'{column}_new'].mean():.4f}",
                     f"{gain.mean():+.4f}", f"{se:.4f}", f"{(gain > 0).sum()} / {(gain < 0).sum()} / {(gain == 0).sum()}",
                     verdict])
    return rows, better_everywhere


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="FILE or LABEL=FILE (label: the file's stem)")
    parser.add_argument("--reference", default=str(SHIPPED_ROWS),
                        help="folder of the reference rows (default: the shipped checkpoint's); 'none' to skip")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--out-dir", default="runs/screen")
    args = parser.parse_args()
    sections = args.sections.split(",")
    reference = None
    if args.reference != "none":
        reference = {s: pd.read_csv(Path(args.reference) / f"{s}.csv") for s in sections
                     if (Path(args.reference) / f"{s}.csv").exists()}
    for spec in args.checkpoints:
        label, path = spec.split("=", 1) if "=" in spec else (Path(spec).stem, spec)
        candidate = rows_of(label, path, Path(args.out_dir), sections)
        if reference is None:
            continue
        rows, better = compare(reference, candidate)
        header = ["metric", "rows", "reference", label, "gain (mean, > 0 better)", "se", "rows better / worse / equal",
                  "verdict"]
        text = (f"{label} ({path}) against {args.reference}\n\n{markdown_table(header, rows)}\n\n"
                f"{'better on every metric' if better else 'not better on every metric'}\n")
        (Path(args.out_dir) / label / "verdict.md").write_text(text)
        print(text, flush=True)


if __name__ == "__main__":
    main()
