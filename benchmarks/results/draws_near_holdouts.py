"""Experiment: the draws' spread calibrated on hold-out cells drawn near the rows that miss the column."""
import runpy
import sys

sys.path.insert(0, '.')
import numpy as np

import icl_diffusion.inference as inf

orig_ss = inf.spread_scales
orig_hold_out = inf.hold_out

def local_hold_out(known, columns, rng, x=None):
    if x is None:
        return orig_hold_out(known, columns, rng)
    z = np.where(known, x, 0.0)
    hold = np.zeros_like(known)
    for j in np.flatnonzero(columns):
        observed = np.flatnonzero(known[:, j])
        missing = np.flatnonzero(~known[:, j])
        k = min(max(inf.CALIBRATION_MIN_CELLS, round(inf.CALIBRATION_FRAC * len(observed))), len(observed) - 2)
        if k <= 0:
            continue
        if len(missing) == 0:
            hold[rng.choice(observed, k, replace=False), j] = True
            continue
        others = np.arange(known.shape[1]) != j
        c = z[missing][:, others].mean(0)
        d2 = ((z[observed][:, others] - c) ** 2).sum(1)
        p = np.exp(-d2 / (2 * np.median(d2) + 1e-12)); p /= p.sum()
        hold[rng.choice(observed, k, replace=False, p=p), j] = True
    return hold

def spread_scales(pretrained, x, known, is_cat, n_classes, seed, key_rows, **settings):
    xs = x[np.sort(key_rows)]
    inf.hold_out = lambda kn, cols, rng: local_hold_out(kn, cols, rng, xs)
    try:
        return orig_ss(pretrained, x, known, is_cat, n_classes, seed, key_rows, **settings)
    finally:
        inf.hold_out = orig_hold_out
inf.spread_scales = spread_scales
script = sys.argv[1]; sys.argv = sys.argv[1:]
runpy.run_path(script, run_name='__main__')
