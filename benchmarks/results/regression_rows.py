"""The regression tables' rows of the screen (``benchmarks/screen.py``'s prediction sections, icl-diffusion
only) for a checkpoint and estimator parameters, without the classification tables: for a change that touches
the regressor alone (session 37: ``DiffusionRegressor(extrapolate=...)``).

    python benchmarks/results/regression_rows.py OUT.csv FIRST_SPLIT SPLITS [CHECKPOINT] [name=value ...]
    python benchmarks/results/regression_rows.py runs/reg_auto.csv 0 10
    python benchmarks/results/regression_rows.py runs/reg_on.csv 0 10 checkpoints/icl_diffusion_small.safetensors extrapolate=True

Compare with the screen's committed rows (``benchmarks/results/screen/stage25/prediction*.csv``: splits 0-2, 3-9)
on table and split."""
import ast
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import classification

from icl_diffusion import load_checkpoint
from icl_diffusion.checkpoint import DEFAULT_CHECKPOINT

out, first, splits = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rest = sys.argv[4:]
checkpoint = rest.pop(0) if rest and "=" not in rest[0] else DEFAULT_CHECKPOINT


def value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a word: "auto"


params = {k: value(v) for k, v in (a.split("=", 1) for a in rest)}
tables, _ = classification.load_tables(list(classification.TABLES))
tables = {name: table for name, table in tables.items() if table[2] == "regression"}
methods = classification.build_methods(load_checkpoint(checkpoint), 512, **params)
args = types.SimpleNamespace(splits=splits, first_split=first, max_train=1024)
runs, _, _ = classification.run(args, tables, {"regression": {"icl": methods["regression"]["icl"]}})
runs.to_csv(out, index=False)
print(runs.groupby("table").r2.mean().round(4).to_string())
