"""Prototype (session 24): nearest rows by distance over the table filled by the point estimate, averaging the
neighbours' observed values; printed: the point estimate, this (5 nearest, sharp), 10 nearest smooth, and half of
each. Run from the repository root: python benchmarks/results/filled_prototype.py guns,boston,auto,college"""
import sys

sys.path.insert(0, "benchmarks")
import numpy as np
import torch

torch.set_num_threads(1)
from common import load_real_table, make_mask

from icl_diffusion import DiffusionImputer


def filled_nn(filled, missing, k=5, sharp=True):
    known = ~missing
    z = filled
    d = ((z[:, None, :] - z[None, :, :]) ** 2).mean(-1)
    np.fill_diagonal(d, np.inf)
    out = filled.copy()
    for j in range(z.shape[1]):
        dj = np.where(known[None, :, j], d, np.inf)  # neighbours that observe column j
        idx = np.argsort(dj, 1)[:, :k]
        dd = np.take_along_axis(dj, idx, 1)
        tau = np.maximum(dd[:, :1], 1e-4) if sharp else np.maximum(dd.mean(1, keepdims=True), 1e-4)
        w = np.exp(-(dd - dd[:, :1]) / tau)
        est = (w * z[idx, j]).sum(1) / w.sum(1)
        out[missing[:, j], j] = est[missing[:, j]]
    return out


for name in sys.argv[1].split(","):
    t = load_real_table(name, max_rows=1000)
    x = t.x
    for mech in ("mcar", "mar", "mnar"):
        for rate in (0.1, 0.3, 0.5):
            res = []
            for seed in (0,):
                m = make_mask(x, mech, rate, np.random.default_rng(seed))
                f = DiffusionImputer(random_state=seed).fit_transform(np.where(m, np.nan, x))

                def e(g, m=m, x=x):
                    return np.sqrt(((g - x)[m] ** 2).mean())

                sharp, smooth = filled_nn(f, m, 5, True), filled_nn(f, m, 10, False)
                res.append((e(f), e(sharp), e(smooth), e(0.5 * f + 0.5 * sharp)))
            print(name, mech, rate, np.round(np.mean(res, 0), 3), flush=True)
