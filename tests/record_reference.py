"""Record the shipped checkpoint's reference outputs for test_shipped_checkpoint.py (run after shipping new
weights, never from a test): ``python tests/record_reference.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from icl_diffusion import DiffusionClassifier, DiffusionImputer


def mixed_table() -> pd.DataFrame:
    """40 x 5: four correlated numeric columns and a 3-level category driven by them; ~25% cells missing."""
    rng = np.random.default_rng(7)
    z = rng.normal(size=(40, 2))
    x = z @ rng.normal(size=(2, 4)) + 0.3 * rng.normal(size=(40, 4))
    df = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    df["kind"] = pd.Categorical(np.where(z[:, 0] > 0.5, "p", np.where(z[:, 0] < -0.5, "n", "z")))
    holes = rng.random(df.shape) < 0.25
    return df.mask(holes)


def _numeric(frames) -> np.ndarray:
    """Imputed table(s) as numbers: numeric columns as they are, the category as its code."""
    frames = frames if isinstance(frames, list) else [frames]
    out = []
    for f in frames:
        f = f.copy()
        codes = pd.Categorical(f["kind"], categories=["n", "p", "z"]).codes
        f["kind"] = np.where(codes >= 0, codes, np.nan)  # -1 = missing
        out.append(f.to_numpy(dtype=np.float64))
    return np.stack(out)


CASES = {
    "point": {},
    "conditional_2_draws": {"method": "conditional", "n_steps": 5, "n_imputations": 2, "center_draws": False,
                            "calibrate_spread": False, "couple_draws": False},  # the sampler's own draws
    "draws_defaults": {"n_imputations": 3},  # the checkpoint's draw settings: centred, calibrated and coupled
    "repaint_1_draw": {"method": "repaint", "n_steps": 10, "jump_length": 2, "jump_n_sample": 2},
    "classifier_proba": None,
}


def run_case(case: str):
    """(output array, (rows, cols, values) of the observed cells or None) of one reference case."""
    torch.set_num_threads(1)
    df = mixed_table()
    if case == "classifier_proba":
        X, y = df[["a", "b", "c", "d"]], df["kind"]
        train = y.notna().to_numpy()
        clf = DiffusionClassifier(random_state=0).fit(X[train], y[train])
        return clf.predict_proba(X[~train]), None
    params = CASES[case]
    imputer = DiffusionImputer(random_state=0, **params).fit(df)
    if params.get("n_imputations", 1) > 1 or params.get("method") == "repaint":
        out = _numeric(imputer.sample(df, n_imputations=params.get("n_imputations", 1)))
    else:
        out = _numeric(imputer.transform(df))
    known = _numeric(df)[0]
    rows, cols = np.nonzero(~np.isnan(known))
    return out, (rows, cols, known[rows, cols])


if __name__ == "__main__":
    path = Path(__file__).parent / "data" / "reference_outputs.json"
    path.write_text(json.dumps({case: run_case(case)[0].tolist() for case in CASES}))
    print(f"wrote {path}")
