"""Quality checks of a model through the path users run (estimator -> inference engine -> network).

Each check returns (score, bar, what): it passes when score beats bar in its stated direction. The shipped
checkpoint must pass every check (test_shipped_quality.py); the wrong models of ``icl_diffusion.baselines``
(random weights, blind to observed cells, the closed-form estimates alone) must each fail at least one, so
a check that cannot tell them apart from the shipped model is caught here rather than trusted.

Bars were set from measured values (stage-5 checkpoint, README "Tests of quality") with a margin below the
shipped model and far above every wrong model; they are not tuned to the current numbers' last digit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.model_selection import train_test_split

from icl_diffusion import DiffusionClassifier, DiffusionImputer
from icl_diffusion.checkpoint import Pretrained
from priors import PriorConfig, fixed_batches

CLASSIFICATION_BARS = {"iris": 0.90, "wine": 0.93, "breast_cancer": 0.92}


def classification_accuracy(pretrained: Pretrained, name: str) -> float:
    """Test accuracy of DiffusionClassifier on a scikit-learn table, seeded stratified 70/30 split."""
    loader = {"iris": load_iris, "wine": load_wine, "breast_cancer": load_breast_cancer}[name]
    X, y = loader(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    clf = DiffusionClassifier(checkpoint=pretrained, random_state=0).fit(X_tr, y_tr)
    return float((clf.predict(X_te) == y_te).mean())


def function_of_numeric_table(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A table whose categorical column is a deterministic, non-monotone function of a numeric one
    ("mid" in the middle band of ``a``, "lo"/"hi" outside), plus a noise column; 30% of the category hidden."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    level = np.where(a < -0.6, "lo", np.where(a > 0.6, "hi", "mid"))
    df = pd.DataFrame({"a": a, "b": b, "level": pd.Categorical(level)})
    hidden = rng.random(n) < 0.3
    holey = df.copy()
    holey.loc[hidden, "level"] = np.nan
    return holey, level[hidden]


def band_table(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A binary category that is "in" when |a| < 0.7 and "out" otherwise, plus a noise column; 30% hidden.
    Both levels have the same mean of ``a``: linear discriminants (the closed-form estimate) see nothing,
    only a model that learned past its input recovers it."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    level = np.where(np.abs(a) < 0.7, "in", "out")
    df = pd.DataFrame({"a": a, "b": b, "level": pd.Categorical(level)})
    hidden = rng.random(n) < 0.3
    df.loc[hidden, "level"] = np.nan
    return df, level[hidden]


def categorical_function_accuracy(pretrained: Pretrained, table=function_of_numeric_table) -> tuple[float, float]:
    """(accuracy of DiffusionImputer on the hidden categorical cells, accuracy of the column mode)."""
    holey, truth = table()
    filled = DiffusionImputer(checkpoint=pretrained, random_state=0).fit_transform(holey)
    hidden = holey["level"].isna().to_numpy()
    mode = holey["level"].mode()[0]
    return float((filled["level"].to_numpy()[hidden] == truth).mean()), float((truth == mode).mean())


def synthetic_numeric_nrmse(pretrained: Pretrained) -> float:
    """Mean over held-back numeric SCM prior tables (128 x 8, MCAR and MAR, a seed the training and validation
    streams never use) of DiffusionImputer's NRMSE, each column scaled by its complete-data std. A mean of
    per-table errors, not pooled cells: the prior's rare gross errors would otherwise decide it."""
    cfg = PriorConfig(p_has_categorical=0.0, p_classification=0.0)
    scores = []
    for kind in ("mcar", "mar"):
        for batch in fixed_batches(cfg, 424242, 1, batch_size=8, n_rows=128, n_features=8, family="scm",
                                   mask_kind=kind):
            for x, known in zip(batch["x"].double().numpy(), batch["known"].numpy(), strict=True):
                filled = DiffusionImputer(checkpoint=pretrained, random_state=0).fit_transform(np.where(known, x, np.nan))
                scaled = (filled - x) / x.std(0).clip(min=1e-8)
                scores.append(float(np.sqrt((scaled[~known] ** 2).mean())))
    return float(np.mean(scores))
