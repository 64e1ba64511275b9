"""The ``icl-diffusion`` command line.

    icl-diffusion impute IN.csv -o OUT.csv [--n-imputations K] [--plot PLOT.png] [--method point] [--n-steps N]
    icl-diffusion predict --train T.csv --test Q.csv --target COL -o OUT.csv [--task auto]
    icl-diffusion demo
    icl-diffusion pretrain [hydra overrides ...] | export CKPT -o OUT
    icl-diffusion finetune --data A.csv [B.csv ...] -o OUT.safetensors [--from CKPT] [max_steps=N ...]
    icl-diffusion finetune --from CKPT [hydra overrides ...]     (continue pretraining on the prior)

Tables are CSV (``.csv``, also compressed, e.g. ``.csv.gz``), TSV (``.tsv``) or Parquet (``.parquet``, needs
pyarrow); another extension is refused before any work. In CSV/TSV input, columns of ISO dates (2020-01-31,
2020-01-31 12:00) are dates, and numbers are numbers; output dates are written as ISO dates, booleans and
whole numbers as they were read (TRUE, 2).
``impute`` with ``--n-imputations K > 1`` writes multiple imputations in one file, in long format: the K
filled copies of the table stacked, with a first column ``_imputation`` = 1..K (as R's mice ``complete(...,
"long")``). ``predict`` writes the query table with the target column filled in (plus ``proba_<class>``
columns with ``--proba`` or ``<target>_q<q>`` columns with ``--quantiles``).
Bad input exits with status 1 and one line on stderr; usage errors and missing training extras exit 2.
Progress bars are on when stderr is a terminal (``--progress`` / ``--no-progress`` decide otherwise).
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from . import __version__
from .inference import ENGINE_METHODS, SNAP_MAX_VALUES, SNAP_MIN_REPEATS
from .sampling import SamplerConfig
from .transforms import MEMBERS, check_members

# --task auto: integer targets with at most this many distinct values are classes (as in scikit-learn's
# type_of_target, which calls a few distinct integers "multiclass"); more are a regression target.
AUTO_MAX_CLASSES = 10

EXAMPLE = "example.csv"

# Table file formats by extension: the CSV separator, or None for Parquet.
TABLE_FORMATS = {".csv": ",", ".tsv": "\t", ".parquet": None}
PLOT_FORMATS = (".png", ".pdf", ".svg")
COMPRESSIONS = {".gz", ".bz2", ".zip", ".xz", ".zst"}  # pandas reads and writes CSV/TSV through these


class UserError(Exception):
    """Bad input: reported as one line on stderr."""


def table_format(path: str | Path) -> str:
    """The format of a table file from its extension (a key of TABLE_FORMATS); anything else is a UserError."""
    suffixes = [x.lower() for x in Path(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
    fmt = suffixes[-1] if suffixes else ""
    if fmt not in TABLE_FORMATS:
        raise UserError(f"{path}: unsupported table format {fmt or '(no extension)'!r}; use .csv, .tsv or .parquet")
    return fmt


def read_table(path: str | Path, na_values: str | None = None) -> pd.DataFrame:
    """A CSV, TSV or Parquet table; ``na_values``: extra comma-separated missing-value markers (CSV, TSV).
    Columns whose every value is an ISO date become datetime64 columns; columns of booleans (TRUE, false, ...)
    are kept as the strings they are written as, so that they are written back so. Header names are kept as
    written (an empty one stays empty, not pandas' 'Unnamed: k')."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    sep = TABLE_FORMATS[table_format(path)]
    if sep is None:
        try:
            return pd.read_parquet(path)
        except ImportError as err:
            raise UserError(f"reading Parquet needs pyarrow (pip install pyarrow): {err}") from err
    # pandas renames a repeated name (a, a -> a, a.1): read the header as it is written.
    try:
        header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty: a table needs at least a header row") from None
    repeated = header[header.duplicated()]
    if len(repeated):
        raise UserError(f"column name {repeated.iloc[0]!r} appears more than once in the header of {path}: give "
                        "every column its own name")
    if len(header) == 1:
        _check_separator(path, header.iloc[0], sep)
    # One column: an empty line is a missing cell (as a spreadsheet writes it), not a line to skip. index_col=False:
    # a row with more fields than the header would otherwise give its first field to the index, silently.
    options = {"sep": sep, "na_values": na_values.split(",") if na_values else None,
               "skip_blank_lines": len(header) > 1, "index_col": False}
    table = _read_rows(path, options)
    table.columns = header.tolist()
    booleans = [j for j, (_, col) in enumerate(table.items()) if _booleans(col)]
    if booleans:  # read again as the text they are: 'TRUE' would be written back 'True'
        text = pd.read_csv(path, **options, usecols=booleans, dtype=str)
        for k, j in enumerate(booleans):
            table.isetitem(j, text.iloc[:, k])
    for name in table.columns:
        col = table[name]
        if pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
            continue
        values = col.dropna()
        # A CSV column of numbers with one stray word is read as strings: say so instead of treating
        # every number as a category.
        numbers = pd.to_numeric(values, errors="coerce").notna().to_numpy()
        if numbers.any() and not numbers.all():
            raise UserError(f"column {name!r} mixes numbers and strings (e.g. {values[~numbers].iloc[0]!r}): fix "
                            "the values, or name missing-value markers with --na-values")
        try:
            dates = pd.to_datetime(col, format="ISO8601", errors="coerce")
        except (ValueError, TypeError):  # e.g. mixed time zones: left as strings
            continue
        # Whole dates only: '2020-01' (a month) would be written back as '2020-01-01' and imputed as a day.
        days = values.astype(str).str.match(r"\d{4}-\d{2}-\d{2}").all()
        if len(values) and days and dates.notna().sum() == len(values):
            table[name] = dates
    return table


# Separators a table file may use, by name: a file that reads as one column whose header holds another is refused.
SEPARATORS = {",": "comma", "\t": "tab", ";": "';'", "|": "'|'"}


def _check_separator(path: Path, name: str, sep: str) -> None:
    """A one-column header holding another separator: the file is not separated as its extension says (a
    ';'-separated .csv would be read as one column and written back mangled)."""
    for other, called in SEPARATORS.items():
        if other != sep and other in name:
            fix = {",": "name it .csv", "\t": "name it .tsv"}.get(other, "write it comma-separated (.csv)")
            raise UserError(f"{path} reads as one column named {name!r}: its fields look {called}-separated, but "
                            f"a {path.suffix} file is read as {SEPARATORS[sep]}-separated; {fix}")


def _read_rows(path: Path, options: dict) -> pd.DataFrame:
    """The rows of a CSV/TSV file; a row with more fields than the header is a UserError naming its line."""
    try:
        with warnings.catch_warnings():
            # index_col=False drops the extra fields of such a row with only this warning.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, **options)
    except (pd.errors.ParserError, pd.errors.ParserWarning) as err:
        if isinstance(err, pd.errors.ParserWarning):  # find the row: each must fit the header's width
            try:
                pd.read_csv(path, sep=options["sep"], header=None, dtype=str, keep_default_na=False,
                            skip_blank_lines=options["skip_blank_lines"])
            except pd.errors.ParserError as located:
                err = located
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if found is None and isinstance(err, pd.errors.ParserError):
            raise UserError(f"{path}: {err}") from None  # e.g. an unclosed quote: pandas' own line
        where = (f"line {found[2]} has {found[3]} fields, more than the header's {found[1]}" if found
                 else "a row has more fields than the header")
        raise UserError(f"{path}: {where} (a name missing from the header, or a separator inside an unquoted "
                        "value?)") from None


def _booleans(col: pd.Series) -> bool:
    """A column pandas read as booleans (TRUE/false/...; object dtype when some cells are empty)."""
    t = pd.api.types
    return t.is_bool_dtype(col.dtype) or (t.is_object_dtype(col.dtype) and col.notna().any()
                                          and infer_dtype(col.dropna(), skipna=False) == "boolean")


def _blank_columns(table: pd.DataFrame) -> list:
    """Columns with no name and no value: what a separator at the end of every line reads as. They are left out
    of the model and written back as they were read."""
    return [name for name in table.columns if name == "" and table[name].isna().all()]


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    sep = TABLE_FORMATS[table_format(path)]
    path.parent.mkdir(parents=True, exist_ok=True)
    if sep is None:
        try:
            table.to_parquet(path, index=False)
        except ImportError as err:
            raise UserError(f"writing Parquet needs pyarrow (pip install pyarrow): {err}") from err
    else:
        # CSV has no dtypes: a column of integers read with holes (float64 in pandas) is written as integers again.
        as_integers(table).to_csv(path, sep=sep, index=False)


def checkpoint_output(path: str) -> str:
    """An inference checkpoint to write: a .safetensors path (refused before any work otherwise)."""
    if Path(path).suffix != ".safetensors":
        raise UserError(f"-o {path}: an inference checkpoint is written as .safetensors")
    return path


def as_integers(table: pd.DataFrame) -> pd.DataFrame:
    """Float columns holding only whole numbers as integers: how a CSV of integers with holes reads (pandas
    makes them floats), written back as it was (2, not 2.0): int64, or Int64 where cells are still missing (a
    predict feature)."""
    return table.apply(lambda c: c.astype(np.int64 if c.notna().all() else "Int64") if _whole_numbers(c) else c)


def _whole_numbers(col: pd.Series) -> bool:
    if col.dtype != np.float64:
        return False
    v = col.dropna().to_numpy()
    return bool(np.all(v == np.round(v)) and np.abs(v).max(initial=0) < 2**53)


def _model_args(p: argparse.ArgumentParser, sampler: bool = True) -> None:
    p.add_argument("--checkpoint", default=None, help="inference checkpoint (default: $ICL_DIFFUSION_CHECKPOINT "
                   "or the shipped one)")
    if sampler:
        p.add_argument("--method", default="point", choices=ENGINE_METHODS,
                       help="point (default): the one-call posterior mean (with K > 1 imputations, the "
                       "checkpoint's draw sampler); or a sampler")
        p.add_argument("--n-steps", type=int, default=1, help="sampler steps (default 1)")
        p.add_argument("--jump-length", type=int, default=1, help="RePaint jump length (default 1)")
        p.add_argument("--jump-n-sample", type=int, default=1, help="RePaint resamplings (default 1: none)")
        p.add_argument("--variance-mix", type=float, default=None, help="sampler variance between "
                       "beta_tilde (0) and beta (1), log space (default: the checkpoint's, "
                       f"{SamplerConfig.variance_mix} for the shipped one)")
        p.add_argument("--center-draws", action=argparse.BooleanOptionalAction, default=None,
                       help="centre several imputations of each numeric cell on the point estimate "
                       "(default: the checkpoint's setting)")
        p.add_argument("--ensemble-draws", action=argparse.BooleanOptionalAction, default=None,
                       help="split several imputations among the --ensemble's views (default: the checkpoint's "
                       "setting)")
        p.add_argument("--calibrate-spread", action=argparse.BooleanOptionalAction, default=None,
                       help="rescale several imputations of each numeric column so that their spread matches "
                       "their errors on hidden observed cells, and draw categorical cells at a temperature fitted "
                       "alike (default: the checkpoint's setting)")
        p.add_argument("--snap-draws", action=argparse.BooleanOptionalAction, default=None,
                       help=f"move each imputation of a discrete numeric column (at most {SNAP_MAX_VALUES} distinct "
                       f"observed values, each seen {SNAP_MIN_REPEATS} times on average) onto its observed values, in "
                       "their frequencies tilted to the cell's mean (default: the checkpoint's setting)")
        p.add_argument("--couple-draws", action=argparse.BooleanOptionalAction, default=None,
                       help="couple the imputations of a row's missing numeric cells by their conditional "
                       "covariance under a Gaussian fitted to the table: correlated, and as wide as the row's "
                       "known cells leave them (impute; default: the checkpoint's setting)")
        p.add_argument("--parameter-draws", action=argparse.BooleanOptionalAction, default=None,
                       help="shift each imputation of the numeric cells by a bootstrap of the table's fitted "
                       "Gaussian, so that the completed tables carry the uncertainty of its relations (impute; "
                       "default: the checkpoint's setting)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N, mps")
    p.add_argument("--max-context-rows", type=int, default=None,
                   help=f"most rows attended to (default: the checkpoint's, {SamplerConfig.max_context_rows})")
    p.add_argument("--context-cells", type=int, default=None,
                   help="a narrow table's key rows raised to this many cells (rows x columns), at most twice "
                   f"--max-context-rows; 0: --max-context-rows always (default: the checkpoint's, "
                   f"{SamplerConfig.context_cells})")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"query rows per forward pass (default: the checkpoint's, {SamplerConfig.chunk_rows})")
    p.add_argument("--ensemble", default=None, help="views of the table the point estimate is averaged over, "
                   f"comma-separated from {','.join(MEMBERS)} (default: the checkpoint's)")
    p.add_argument("--local-context-rows", type=int, default=None,
                   help="rows of each row's local context (its nearest rows), blended with the whole table's "
                   "estimate per column as the table's own held-out cells favour; 0: off (default: the checkpoint's; "
                   "predict's regressor: 128)")
    p.add_argument("--blend-inputs", action=argparse.BooleanOptionalAction, default=None,
                   help="blend each numeric column's estimate with the network's closed-form inputs (Gaussian "
                   "conditional mean, nearest rows) as the table's own held-out cells favour (default: the "
                   "checkpoint's setting for impute, off for predict)")
    _progress_arg(p)


def _progress_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on when stderr is a terminal)")


def _na_values_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--na-values", default=None, help="extra missing-value markers in CSV/TSV input, "
                   "comma-separated (e.g. '?,n/a'); empty cells and NA, NaN, null are missing already")


def _progress(args) -> bool:
    """--progress / --no-progress, else a bar only when a person watches stderr (not in logs or pipes)."""
    return sys.stderr.isatty() if args.progress is None else args.progress


def _sampler_kwargs(args) -> dict:
    return {**_common_kwargs(args), "method": args.method, "n_steps": args.n_steps,
            "jump_length": args.jump_length, "jump_n_sample": args.jump_n_sample, "variance_mix": args.variance_mix,
            "center_draws": args.center_draws, "calibrate_spread": args.calibrate_spread,
            "ensemble_draws": args.ensemble_draws, "snap_draws": args.snap_draws, "couple_draws": args.couple_draws,
            "parameter_draws": args.parameter_draws}


def _common_kwargs(args) -> dict:
    """Estimator arguments; an unknown or unavailable --device is refused here, before any work."""
    from .estimators import resolve_device

    try:
        resolve_device(args.device)
    except ValueError as err:
        raise UserError(f"--device {args.device}: {err}") from err
    ensemble = None
    if args.ensemble is not None:
        try:
            ensemble = check_members([m.strip() for m in args.ensemble.split(",")])
        except ValueError as err:
            raise UserError(f"--ensemble {args.ensemble}: {err}") from err
    kwargs = {"checkpoint": args.checkpoint, "random_state": args.seed, "device": args.device,
              "max_context_rows": args.max_context_rows, "context_cells": args.context_cells,
              "batch_size": args.batch_size, "progress": _progress(args),
              "ensemble": ensemble}
    # Unset: each estimator's default (the predictors' blend is off; the regressor's local contexts on).
    for name in ("blend_inputs", "local_context_rows"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    return kwargs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="icl-diffusion", description="Zero-shot imputation and prediction for tables with a pretrained "
        "diffusion transformer.", epilog="Tables: .csv (also .csv.gz, ...), .tsv, or .parquet (needs pyarrow).")
    parser.add_argument("--version", action="version", version=f"icl-diffusion {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("impute", help="fill the missing cells of a table",
                       description="Fill every missing cell of IN and write OUT. With --n-imputations K > 1, "
                       "OUT holds K imputed copies stacked, with a first column _imputation = 1..K.")
    p.add_argument("input", metavar="IN", help="table with missing cells (.csv, .tsv or .parquet)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the filled table")
    p.add_argument("--n-imputations", type=int, default=1, metavar="K",
                   help="K > 1: multiple imputation (point becomes the checkpoint's draw sampler)")
    p.add_argument("--plot", metavar="FILE", default=None, help="also save a plot of observed vs imputed "
                   "distributions per column across the imputations (.png, .pdf, .svg; needs matplotlib)")
    _model_args(p)
    _na_values_arg(p)

    p = sub.add_parser("predict", help="predict a target column of query rows from training rows",
                       description="Fit on TRAIN (rows with a missing target are dropped), predict TARGET for "
                       "the rows of TEST and write TEST with the TARGET column filled in.")
    p.add_argument("--train", required=True, help="training table with the target column")
    p.add_argument("--test", required=True, help="query table (its target column, if any, is ignored)")
    p.add_argument("--target", required=True, help="name of the target column")
    p.add_argument("-o", "--output", required=True, help="where to write the predictions")
    p.add_argument("--task", default="auto", choices=("auto", "classification", "regression"),
                   help="auto: classification for text and boolean targets and integer targets with at most "
                   f"{AUTO_MAX_CLASSES} distinct values; regression for other numbers and for dates")
    p.add_argument("--proba", action="store_true", help="classification: add proba_<class> columns")
    p.add_argument("--quantiles", default=None, help="regression: comma-separated quantiles, e.g. 0.05,0.95, "
                   "added as <target>_q<q> columns")
    p.add_argument("--ensemble-folds", type=int, default=None,
                   help="regression: folds of the cross-validation on the training rows that weighs the "
                   "--ensemble's two views for the target; 0: their equal average (default: "
                   "DiffusionRegressor's, 3)")
    p.add_argument("--tree-weight", type=_tree_weight, default="auto", metavar="W",
                   help="the target blended with an extremely randomized forest fitted on the training rows: "
                   "(1 - W) network + W trees; auto (default): W chosen by cross-fitting on the training rows; "
                   "0: the network alone")
    p.add_argument("--extrapolate", choices=("auto", "on", "off"), default="auto",
                   help="regression: a test row beyond the training rows' range predicted at its nearest edge and "
                   "carried on from there along the target's linear fit (on), or flat beyond the edge (off); auto "
                   "(default): on where it predicts the training rows at the ends of that linear fit better, held out")
    _model_args(p)
    _na_values_arg(p)

    p = sub.add_parser("demo", help="impute the bundled example table and show a few rows",
                       description="Impute the bundled example table (palmer penguins with holes) and print "
                       "a few rows before and after.")
    p.add_argument("--rows", type=int, default=5, help="rows to show (default 5)")
    _model_args(p, sampler=False)

    p = sub.add_parser("pretrain", help="pretrain on the synthetic prior (Hydra overrides)",
                       description="Run icl_diffusion.train with Hydra overrides, e.g. trainer.max_steps=100 "
                       "out_dir=runs/x (rerun with ckpt_path=last to resume).")
    _progress_arg(p)
    p.add_argument("overrides", nargs="*", help="Hydra overrides key=value")
    p = sub.add_parser("finetune", help="fine-tune on your tables (--data), or continue pretraining",
                       description="With --data: fine-tune a checkpoint (--from, default the shipped one) on "
                       "your tables and write the best validation weights to -o; overrides are FineTuneConfig "
                       "fields, e.g. max_steps=400 lr=5e-4 p_prior=0.2 val_frac=0.2; max_forgetting=none keeps "
                       "weights that fit your tables even when they lose generic skill (by default weights more "
                       "than 0.02 worse on the Gaussian-oracle check are refused); min_gain_se=0 keeps weights "
                       "whose validation gain over the start is within noise (by default it must exceed two paired "
                       "standard errors). Without --data: continue "
                       "pretraining on the synthetic prior from --from, with Hydra overrides.")
    p.add_argument("--data", nargs="+", metavar="TABLE", help="CSV, TSV or Parquet tables of your domain")
    p.add_argument("-o", "--output", help="with --data: the fine-tuned checkpoint to write (.safetensors)")
    p.add_argument("--from", dest="init_from", default=None, help="inference checkpoint to start from")
    p.add_argument("--resume", action="store_true", help="with --data: continue an interrupted fine-tuning")
    _progress_arg(p)
    _na_values_arg(p)
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
    table_format(args.output)
    if args.plot and Path(args.plot).suffix.lower() not in PLOT_FORMATS:
        raise UserError(f"--plot {args.plot}: the file must end in one of {', '.join(PLOT_FORMATS)}")
    kwargs = _sampler_kwargs(args)
    table = read_table(args.input, args.na_values)
    if args.n_imputations > 1 and "_imputation" in table.columns:
        raise UserError("column '_imputation' has the name of the column --n-imputations adds (the imputation "
                        "number): rename it")
    data = table.drop(columns=_blank_columns(table))
    imputer = DiffusionImputer(**kwargs).fit(data)
    if args.n_imputations == 1:
        copies = [imputer.transform(data)]
        out = copies[0].reindex(columns=table.columns)
    else:
        copies = imputer.sample(data, n_imputations=args.n_imputations)
        out = pd.concat([c.assign(_imputation=k) for k, c in enumerate(copies, 1)], ignore_index=True)
        out = out.reindex(columns=["_imputation", *table.columns])
    write_table(out, args.output)
    if args.plot:
        from .diagnostics import plot_imputations

        plot_imputations(data, copies).savefig(args.plot, dpi=100)


def _is_classification(y: pd.Series) -> bool:
    """--task auto: a target of text, booleans or few whole numbers is a class; numbers and dates are numbers."""
    t = pd.api.types
    if t.is_datetime64_any_dtype(y.dtype):
        return False
    if not t.is_numeric_dtype(y.dtype) or t.is_bool_dtype(y.dtype):
        return True
    v = y.to_numpy(dtype=np.float64)
    return bool(np.all(v == np.round(v))) and y.nunique() <= AUTO_MAX_CLASSES


def _tree_weight(text: str):
    """--tree-weight: "auto" or a number in [0, 1] (the estimators check the range)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a number in [0, 1], got {text!r}") from None


def cmd_predict(args) -> None:
    from .estimators import DiffusionClassifier, DiffusionRegressor

    table_format(args.output)
    common, qs = _common_kwargs(args), _quantiles(args.quantiles)
    train, test = read_table(args.train, args.na_values), read_table(args.test, args.na_values)
    if args.target not in train.columns:
        raise UserError(f"target column {args.target!r} not in {args.train} (columns: {list(train.columns)})")
    train = train.drop(columns=_blank_columns(train))
    train = train[train[args.target].notna()]
    if len(train) == 0:
        raise UserError(f"no training row has a value in target column {args.target!r}")
    X, y = train.drop(columns=[args.target]), train[args.target]
    Xq = test.drop(columns=[args.target, *_blank_columns(test)], errors="ignore")
    if set(Xq.columns) == set(X.columns):  # the same named columns (unique in a header), in any order
        Xq = Xq[X.columns]
    if list(Xq.columns) != list(X.columns):
        raise UserError(f"the test table's columns {list(Xq.columns)} differ from the training features "
                        f"{list(X.columns)}")
    classify = args.task == "classification" or (args.task == "auto" and _is_classification(y))
    task = f"target {args.target!r} is {'a class' if classify else 'a number'} (--task {args.task})"
    if classify and qs:
        raise UserError(f"--quantiles is for regression targets; {task}")
    if not classify and args.proba:
        raise UserError(f"--proba is for classification targets; {task}")
    out, added = test.copy(), {}
    if classify:
        est = DiffusionClassifier(**common, tree_weight=args.tree_weight).fit(X, y.to_numpy())
        proba = est.predict_proba(Xq)
        out[args.target] = est.classes_[proba.argmax(1)]
        if args.proba:
            added = {f"proba_{c}": proba[:, k] for k, c in enumerate(est.classes_)}
    else:
        # couple_draws, parameter_draws: settings of several imputations of a table, which a prediction's are not
        kw = {k: v for k, v in _sampler_kwargs(args).items()
              if k not in common and k not in ("couple_draws", "parameter_draws")}
        if args.ensemble_folds is not None:
            kw["ensemble_folds"] = args.ensemble_folds
        dates = pd.api.types.is_datetime64_any_dtype(y.dtype)  # the regressor predicts dates as dates
        extrapolate = {"auto": "auto", "on": True, "off": False}[args.extrapolate]
        est = DiffusionRegressor(**common, **kw, tree_weight=args.tree_weight, extrapolate=extrapolate).fit(
            X, y.to_numpy() if dates else y.to_numpy(dtype=np.float64))
        out[args.target] = est.predict(Xq)
        if qs:
            added = {f"{args.target}_q{q:g}": col for q, col in zip(qs, est.predict_quantiles(Xq, qs).T)}
    clash = [name for name in added if name in out.columns]
    if clash:
        raise UserError(f"column {clash[0]!r} of {args.test} has the name of a column predict adds: rename it")
    write_table(out.assign(**added), args.output)


def _quantiles(text: str | None) -> list[float]:
    """--quantiles 0.05,0.95 -> [0.05, 0.95]."""
    if text is None:
        return []
    try:
        qs = [float(q) for q in text.split(",")]
    except ValueError:
        qs = []
    if not qs or not all(0 <= q <= 1 for q in qs):
        raise UserError(f"--quantiles must be comma-separated numbers in [0, 1], got {text!r}")
    return qs


def cmd_finetune(args) -> None:
    if not args.data:
        if not args.init_from:
            raise UserError("finetune needs --data TABLE ... (fine-tune on your tables) or --from CKPT "
                            "(continue pretraining on the synthetic prior)")
        _run_hydra("finetune", [*args.overrides, f"init_from={args.init_from}"], args)
        return
    if not args.output:
        raise UserError("finetune --data needs -o OUT.safetensors")
    checkpoint_output(args.output)
    from dataclasses import fields

    from .finetune import FineTuneConfig, fine_tune

    types = {f.name: f.type for f in fields(FineTuneConfig)}
    settings = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise UserError(f"unknown fine-tuning setting {item!r}; settings: {', '.join(types)}")
        settings[key] = _finetune_setting(item, key, value, str(types[key]))
    tables = [read_table(path, args.na_values) for path in args.data]
    fine_tune(tables, checkpoint=args.init_from, out=args.output, progress=_progress(args), resume=args.resume,
              **settings)


FINETUNE_KINDS = {"float": "a number", "int": "an integer", "bool": "true or false",
                  "tuple[int, int]": "two integers, e.g. rows=64,256", "tuple[str, ...]": "names, e.g. mask_kinds=mcar,mar",
                  "tuple[str, ...] | None": "names, e.g. views=identity,yeo_johnson",
                  "float | None": "a number or none"}


def _finetune_setting(item: str, key: str, value: str, kind: str):
    """A ``FineTuneConfig`` value from the command line, by the field's type; a one-line error otherwise."""
    parts = [v.strip().strip("'\"") for v in value.strip("[]()").split(",") if v.strip()]
    try:
        if kind == "bool":
            return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[value.lower()]
        if kind == "tuple[int, int]":
            if len(parts) != 2:
                raise ValueError
            return tuple(int(v) for v in parts)
        if kind.startswith("tuple[str, ...]"):
            return tuple(parts)
        if kind == "float | None":
            return None if value.lower() in ("none", "null") else float(value)
        return float(value) if kind == "float" else int(value)
    except (KeyError, ValueError) as err:
        raise UserError(f"fine-tuning setting {item!r}: {key} takes {FINETUNE_KINDS.get(kind, kind)}") from err


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


def _setting_kind(value) -> str | None:
    """What a config value takes, in words; None when any value fits (strings, unset keys)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_list(value) or isinstance(value, list):
        return "a list, e.g. [a, b]"
    if OmegaConf.is_dict(value) or isinstance(value, dict):
        return "a mapping"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return None


def _check_override_types(cfg, reference, overrides: list[str]) -> None:
    """A setting given on the command line must have the type of the value it replaces (in ``reference``, the
    config without the dotted overrides): ``trainer.max_steps=abc`` is a one-line error here, not a failure
    deep in a run. An integer is a number too, and null switches any setting off."""
    from omegaconf import OmegaConf

    if not (OmegaConf.is_config(cfg) and OmegaConf.is_config(reference)):
        return
    for item in overrides:
        key = item.split("=")[0].lstrip("+~")
        if "." not in key or "=" not in item:
            continue
        value = OmegaConf.select(cfg, key)
        old, new = _setting_kind(OmegaConf.select(reference, key)), _setting_kind(value)
        if old is not None and value is not None and new != old and not (old == "a number" and new == "an integer"):
            raise UserError(f"setting {item!r}: {key} takes {old}")


def _name_bad_override(compose, reference, overrides: list[str]) -> None:
    """The schema (``TrainConfig``) refused a dotted override at composition: say which one and what its
    setting takes, in one line, as ``_check_override_types`` does for the untyped groups."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    plain = [o for o in overrides if "." not in o.split("=")[0]]
    for item in overrides:
        key = item.split("=")[0].lstrip("+~")
        if item in plain or "=" not in item:
            continue
        try:
            compose([*plain, item])
        except (HydraException, OmegaConfBaseException):
            kind = _setting_kind(OmegaConf.select(reference, key))
            if kind is not None:
                raise UserError(f"setting {item!r}: {key} takes {kind}") from None


def _run_hydra(command: str, overrides: list[str], args) -> None:
    """Run the Hydra application. The overrides and the starting checkpoint are checked first, so that a
    mistake is one line and no run directory is made; the progress bar follows --progress / the terminal."""
    from hydra.errors import HydraException
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from omegaconf.errors import OmegaConfBaseException

    fn, compose = _training(command, "hydra_main"), _training(command, "compose")
    if not any("enable_progress_bar" in o for o in overrides):
        overrides = [*overrides, f"++trainer.enable_progress_bar={str(_progress(args)).lower()}"]
    try:
        reference = compose([o for o in overrides if "." not in o.split("=")[0]])
        try:
            cfg = compose(overrides)
        except (HydraException, OmegaConfBaseException):
            _name_bad_override(compose, reference, overrides)
            raise
        _check_override_types(cfg, reference, overrides)
        init_from = cfg.get("init_from")
    except (HydraException, OmegaConfBaseException) as err:
        raise UserError(f"bad override: {str(err).split('Config search path')[0]}") from err
    if init_from:
        from .checkpoint import load_checkpoint

        load_checkpoint(init_from, strict=False)
    full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing a traceback and exiting
    argv = sys.argv  # a @hydra.main function reads its overrides from sys.argv
    try:
        if "overrides" in inspect.signature(fn).parameters:
            fn(overrides)
        else:
            sys.argv = [f"icl-diffusion {command}", *overrides]
            fn()
    except (HydraException, OmegaConfBaseException, MisconfigurationException) as err:
        raise UserError(str(err)) from err
    finally:
        sys.argv = argv
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR")
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error


def cmd_export(args) -> None:
    """Lightning checkpoint -> inference checkpoint; a file that is not a training checkpoint is one line."""
    checkpoint_output(args.output)
    export = _training("export", "export_lightning_checkpoint")
    if not Path(args.ckpt).is_file():
        raise UserError(f"no such file: {args.ckpt}")
    import torch

    try:
        state = torch.load(args.ckpt, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle, zip and runtime errors for foreign files
        first = (str(err).strip().splitlines() or [""])[0]
        raise UserError(f"{args.ckpt} is not a Lightning checkpoint (.ckpt): torch.load failed "
                        f"({type(err).__name__}: {first})") from err
    if not isinstance(state, dict) or not {"hyper_parameters", "state_dict"} <= state.keys():
        raise UserError(f"{args.ckpt} is not a checkpoint of an icl-diffusion training run (no hyper_parameters "
                        "and state_dict)")
    print(f"wrote {export(args.ckpt, args.output)}")


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
            _run_hydra("pretrain", args.overrides, args)
        elif args.command == "finetune":
            cmd_finetune(args)
        elif args.command == "export":
            cmd_export(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except (UserError, ValueError, TypeError, OSError, ImportError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"icl-diffusion {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
