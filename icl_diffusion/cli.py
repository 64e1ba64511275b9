"""The ``icl-diffusion`` command line.

    icl-diffusion impute IN.csv -o OUT.csv [--n-imputations K] [--plot PLOT.png] [--method ddim] [--n-steps N]
    icl-diffusion predict --train T.csv --test Q.csv --target COL -o OUT.csv [--task auto]
    icl-diffusion demo
    icl-diffusion pretrain [hydra overrides ...] | export CKPT -o OUT
    icl-diffusion finetune --data A.csv [B.csv ...] -o OUT.safetensors [--from CKPT] [max_steps=N ...]
    icl-diffusion finetune --from CKPT [hydra overrides ...]     (continue pretraining on the prior)

Tables are CSV, or Parquet when the file name ends in ``.parquet`` (needs pyarrow).
``impute`` with ``--n-imputations K > 1`` writes multiple imputations in one file, in long format: the K
filled copies of the table stacked, with a first column ``_imputation`` = 1..K (as R's mice ``complete(...,
"long")``). ``predict`` writes the query table with the target column filled in (plus ``proba_<class>``
columns with ``--proba`` or ``<target>_q<q>`` columns with ``--quantiles``).
Bad input exits with status 1 and one line on stderr; usage errors and missing training extras exit 2.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .sampling import METHODS, VARIANCE_MIX

# --task auto: integer targets with at most this many distinct values are classes (as in scikit-learn's
# type_of_target, which calls a few distinct integers "multiclass"); more are a regression target.
AUTO_MAX_CLASSES = 10

EXAMPLE = "example.csv"


class UserError(Exception):
    """Bad input: reported as one line on stderr."""


def read_table(path: str | Path, na_values: str | None = None) -> pd.DataFrame:
    """A CSV or Parquet table; ``na_values``: extra comma-separated missing-value markers (CSV)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    if path.suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except ImportError as err:
            raise UserError(f"reading Parquet needs pyarrow (pip install pyarrow): {err}") from err
    table = pd.read_csv(path, na_values=na_values.split(",") if na_values else None)
    for name in table.columns:
        # A CSV column of numbers with one stray word is read as strings: say so instead of treating
        # every number as a category.
        col = table[name]
        if pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
            continue
        values = col.dropna()
        numbers = pd.to_numeric(values, errors="coerce").notna().to_numpy()
        if numbers.any() and not numbers.all():
            raise UserError(f"column {name!r} mixes numbers and strings (e.g. {values[~numbers].iloc[0]!r}): fix "
                            "the values, or name missing-value markers with --na-values")
    return table


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        try:
            table.to_parquet(path, index=False)
        except ImportError as err:
            raise UserError(f"writing Parquet needs pyarrow (pip install pyarrow): {err}") from err
    else:
        # CSV has no dtypes: a column of integers read with holes (float64 in pandas) is written as integers again.
        as_integers(table).to_csv(path, index=False)


def as_integers(table: pd.DataFrame) -> pd.DataFrame:
    """Float columns holding only whole numbers as int64: how a CSV of integers with holes reads again."""
    return table.apply(lambda c: c.astype(np.int64) if _whole_numbers(c) else c)


def _whole_numbers(col: pd.Series) -> bool:
    if col.dtype != np.float64 or not col.notna().all():
        return False
    v = col.to_numpy()
    return bool(np.all(v == np.round(v)) and np.abs(v).max(initial=0) < 2**53)


def _model_args(p: argparse.ArgumentParser, sampler: bool = True) -> None:
    p.add_argument("--checkpoint", default=None, help="inference checkpoint (default: $ICL_DIFFUSION_CHECKPOINT "
                   "or the shipped one)")
    if sampler:
        p.add_argument("--method", default="ddim", choices=METHODS,
                       help="sampler; ddim with 1 step (default) is the one-call posterior mean")
        p.add_argument("--n-steps", type=int, default=1, help="sampler steps (default 1)")
        p.add_argument("--jump-length", type=int, default=1, help="RePaint jump length (default 1)")
        p.add_argument("--jump-n-sample", type=int, default=1, help="RePaint resamplings (default 1: none)")
        p.add_argument("--variance-mix", type=float, default=VARIANCE_MIX, help="sampler variance between "
                       f"beta_tilde (0) and beta (1), log space (default {VARIANCE_MIX})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, ...")
    p.add_argument("--max-context-rows", type=int, default=512, help="most rows attended to (default 512)")
    p.add_argument("--batch-size", type=int, default=1024, help="query rows per forward pass (default 1024)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument("--na-values", default=None, help="extra missing-value markers in CSV input, comma-separated "
                   "(e.g. '?,n/a'); empty cells and NA, NaN, null are missing already")


def _sampler_kwargs(args) -> dict:
    return {**_common_kwargs(args), "method": args.method, "n_steps": args.n_steps,
            "jump_length": args.jump_length, "jump_n_sample": args.jump_n_sample, "variance_mix": args.variance_mix}


def _common_kwargs(args) -> dict:
    return {"checkpoint": args.checkpoint, "random_state": args.seed, "device": args.device,
            "max_context_rows": args.max_context_rows, "batch_size": args.batch_size, "progress": args.progress}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="icl-diffusion", description="Zero-shot imputation and prediction for tables with a pretrained "
        "diffusion transformer.", epilog="Tables: .csv, or .parquet (needs pyarrow).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("impute", help="fill the missing cells of a table",
                       description="Fill every missing cell of IN and write OUT. With --n-imputations K > 1, "
                       "OUT holds K imputed copies stacked, with a first column _imputation = 1..K.")
    p.add_argument("input", metavar="IN", help="table with missing cells (.csv or .parquet)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the filled table")
    p.add_argument("--n-imputations", type=int, default=1, metavar="K",
                   help="K > 1: multiple imputation (ddim becomes the conditional sampler, 5 steps)")
    p.add_argument("--plot", metavar="FILE", default=None, help="also save a plot of observed vs imputed "
                   "distributions per column across the imputations (.png, .pdf, .svg; needs matplotlib)")
    _model_args(p)

    p = sub.add_parser("predict", help="predict a target column of query rows from training rows",
                       description="Fit on TRAIN (rows with a missing target are dropped), predict TARGET for "
                       "the rows of TEST and write TEST with the TARGET column filled in.")
    p.add_argument("--train", required=True, help="training table with the target column")
    p.add_argument("--test", required=True, help="query table (its target column, if any, is ignored)")
    p.add_argument("--target", required=True, help="name of the target column")
    p.add_argument("-o", "--output", required=True, help="where to write the predictions")
    p.add_argument("--task", default="auto", choices=("auto", "classification", "regression"),
                   help="auto: classification for non-numeric targets and integer targets with at most "
                   f"{AUTO_MAX_CLASSES} distinct values, else regression")
    p.add_argument("--proba", action="store_true", help="classification: add proba_<class> columns")
    p.add_argument("--quantiles", default=None, help="regression: comma-separated quantiles, e.g. 0.05,0.95, "
                   "added as <target>_q<q> columns")
    _model_args(p)

    p = sub.add_parser("demo", help="impute the bundled example table and show a few rows",
                       description="Impute the bundled example table (palmer penguins with holes) and print "
                       "a few rows before and after.")
    p.add_argument("--rows", type=int, default=5, help="rows to show (default 5)")
    _model_args(p, sampler=False)

    p = sub.add_parser("pretrain", help="pretrain on the synthetic prior (Hydra overrides)",
                       description="Run icl_diffusion.train with Hydra overrides, e.g. trainer.max_steps=100.")
    p.add_argument("overrides", nargs="*", help="Hydra overrides key=value")
    p = sub.add_parser("finetune", help="fine-tune on your tables (--data), or continue pretraining",
                       description="With --data: fine-tune a checkpoint (--from, default the shipped one) on "
                       "your tables and write the best validation weights to -o; overrides are FineTuneConfig "
                       "fields, e.g. max_steps=400 lr=5e-4 p_prior=0.2 val_frac=0.2. Without --data: continue "
                       "pretraining on the synthetic prior from --from, with Hydra overrides.")
    p.add_argument("--data", nargs="+", metavar="TABLE", help="CSV or Parquet tables of your domain")
    p.add_argument("-o", "--output", help="with --data: the fine-tuned checkpoint to write (.safetensors)")
    p.add_argument("--from", dest="init_from", default=None, help="inference checkpoint to start from")
    p.add_argument("--resume", action="store_true", help="with --data: continue an interrupted fine-tuning")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on at a terminal)")
    p.add_argument("--na-values", default=None, help="extra missing-value markers in CSV input")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    p = sub.add_parser("export", help="Lightning checkpoint -> inference checkpoint",
                       description="Write the inference checkpoint (safetensors) of a Lightning checkpoint.")
    p.add_argument("ckpt", help="Lightning .ckpt file")
    p.add_argument("-o", "--output", required=True, help="inference checkpoint to write (.safetensors)")
    return parser


def cmd_impute(args) -> None:
    from .estimators import DiffusionImputer

    if args.n_imputations < 1:
        raise UserError("--n-imputations must be >= 1")
    table = read_table(args.input, args.na_values)
    imputer = DiffusionImputer(**_sampler_kwargs(args)).fit(table)
    if args.n_imputations == 1:
        out = imputer.transform(table)
        copies = [out]
    else:
        copies = imputer.sample(table, n_imputations=args.n_imputations)
        out = pd.concat([c.assign(_imputation=k) for k, c in enumerate(copies, 1)], ignore_index=True)
        out = out[["_imputation", *table.columns]]
    write_table(out, args.output)
    if args.plot:
        from .diagnostics import plot_imputations

        plot_imputations(table, copies).savefig(args.plot, dpi=100)


def _is_classification(y: pd.Series) -> bool:
    t = pd.api.types
    if not t.is_numeric_dtype(y.dtype) or t.is_bool_dtype(y.dtype):
        return True
    v = y.to_numpy(dtype=np.float64)
    return bool(np.all(v == np.round(v))) and y.nunique() <= AUTO_MAX_CLASSES


def cmd_predict(args) -> None:
    from .estimators import DiffusionClassifier, DiffusionRegressor

    train, test = read_table(args.train, args.na_values), read_table(args.test, args.na_values)
    if args.target not in train.columns:
        raise UserError(f"target column {args.target!r} not in {args.train} (columns: {list(train.columns)})")
    train = train[train[args.target].notna()]
    if len(train) == 0:
        raise UserError(f"no training row has a value in target column {args.target!r}")
    X, y = train.drop(columns=[args.target]), train[args.target]
    Xq = test.drop(columns=[args.target], errors="ignore")
    if list(Xq.columns) != list(X.columns):
        raise UserError(f"the test table's columns {list(Xq.columns)} differ from the training features "
                        f"{list(X.columns)}")
    classify = args.task == "classification" or (args.task == "auto" and _is_classification(y))
    common = _common_kwargs(args)
    out = test.copy()
    if classify:
        est = DiffusionClassifier(**common).fit(X, y.to_numpy())
        proba = est.predict_proba(Xq)
        out[args.target] = est.classes_[proba.argmax(1)]
        if args.proba:
            for k, c in enumerate(est.classes_):
                out[f"proba_{c}"] = proba[:, k]
    else:
        kw = {k: v for k, v in _sampler_kwargs(args).items() if k not in common}
        est = DiffusionRegressor(**common, **kw).fit(X, y.to_numpy(dtype=np.float64))
        out[args.target] = est.predict(Xq)
        if args.quantiles:
            try:
                qs = [float(q) for q in args.quantiles.split(",")]
            except ValueError as err:
                raise UserError(f"--quantiles must be comma-separated numbers, got {args.quantiles!r}") from err
            for q, col in zip(qs, est.predict_quantiles(Xq, qs).T):
                out[f"{args.target}_q{q:g}"] = col
    write_table(out, args.output)


def cmd_finetune(args) -> None:
    if not args.data:
        if not args.init_from:
            raise UserError("finetune needs --data TABLE ... (fine-tune on your tables) or --from CKPT "
                            "(continue pretraining on the synthetic prior)")
        if not Path(args.init_from).is_file():
            raise UserError(f"no such checkpoint: {args.init_from}")
        _run_hydra("finetune", [*args.overrides, f"init_from={args.init_from}"])
        return
    if not args.output:
        raise UserError("finetune --data needs -o OUT.safetensors")
    from dataclasses import fields

    from .finetune import FineTuneConfig, fine_tune

    types = {f.name: f.type for f in fields(FineTuneConfig)}
    settings = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise UserError(f"unknown fine-tuning setting {item!r}; settings: {', '.join(types)}")
        settings[key] = tuple(int(v) for v in value.strip("[]()").split(",")) if key == "rows" else (
            float(value) if types[key] == "float" else int(value))
    tables = [read_table(path, args.na_values) for path in args.data]
    fine_tune(tables, checkpoint=args.init_from, out=args.output, progress=args.progress, resume=args.resume,
              **settings)


def cmd_demo(args) -> None:
    from .estimators import DiffusionImputer

    with resources.as_file(resources.files("icl_diffusion") / "data" / EXAMPLE) as path:
        table = pd.read_csv(path)
    filled = DiffusionImputer(**_common_kwargs(args)).fit_transform(table)
    rows = table.index[table.isna().any(axis=1)][: args.rows]
    n_missing = int(table.isna().to_numpy().sum())
    print(f"Example table: {table.shape[0]} rows x {table.shape[1]} columns, {n_missing} missing cells "
          f"({n_missing / table.size:.0%}).\n")
    with pd.option_context("display.width", 120, "display.max_columns", 20, "display.precision", 2):
        print("Before (NaN = missing):")
        print(table.loc[rows].to_string())
        print("\nAfter:")
        print(as_integers(filled).loc[rows].to_string())


def _training(command: str, attr: str):
    """A function of icl_diffusion.train, imported only now (it needs the training extras)."""
    try:
        from . import train
    except ImportError as err:
        print(f"icl-diffusion {command}: training is not available (could not import icl_diffusion.train: "
              f"{err}); install the training extras", file=sys.stderr)
        raise SystemExit(2) from None
    fn = getattr(train, attr, None)
    if fn is None:
        print(f"icl-diffusion {command}: not available (icl_diffusion.train has no {attr})", file=sys.stderr)
        raise SystemExit(2)
    return fn


def _run_hydra(command: str, overrides: list[str]) -> None:
    fn = _training(command, "hydra_main")
    if "overrides" in inspect.signature(fn).parameters:
        fn(overrides)
        return
    argv = sys.argv  # a @hydra.main function reads its overrides from sys.argv
    sys.argv = [f"icl-diffusion {command}", *overrides]
    try:
        fn()
    finally:
        sys.argv = argv


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``icl-diffusion`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2, message already printed)
        return int(exit_.code or 0)
    try:
        if args.command == "impute":
            cmd_impute(args)
        elif args.command == "predict":
            cmd_predict(args)
        elif args.command == "demo":
            cmd_demo(args)
        elif args.command == "pretrain":
            _run_hydra("pretrain", args.overrides)
        elif args.command == "finetune":
            cmd_finetune(args)
        elif args.command == "export":
            path = _training("export", "export_lightning_checkpoint")(args.ckpt, args.output)
            print(f"wrote {path}")
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except (UserError, ValueError, TypeError, OSError, ImportError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"icl-diffusion {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
