"""Headroom on a candidate (a) table: model before, MissForest, GB per numeric column (all other cells observed)."""
import sys, time
import numpy as np, pandas as pd, torch
sys.path.insert(0, "benchmarks")
import finetune as bench
from categorical import score, missforest_mixed, mode_mean, _rdataset
from icl_diffusion import DiffusionImputer
from sklearn.ensemble import HistGradientBoostingRegressor
torch.set_num_threads(1)
name = sys.argv[1]; n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
spec = {"diamonds": ("ggplot2", "diamonds", ["cut", "color", "clarity"]),
        "guns": ("AER", "Guns", ["state", "law"]),
        "close_college": ("causaldata", "close_college", ["nearc4", "black", "smsa", "south", "married"])}[name]
df, cats = _rdataset(*spec)
df = df.dropna().reset_index(drop=True)
if len(df) > n:
    df = df.iloc[np.sort(np.random.default_rng(0).choice(len(df), n, replace=False))].reset_index(drop=True)
df = pd.DataFrame({c: df[c].astype(str).astype("category") if c in cats else df[c].astype(np.float64) for c in df.columns})
rng = np.random.default_rng(0)
test = rng.random(len(df)) < 0.3
missing, holey, mean, std = bench.hide_cells(df, test, rng)
for m, f in [("before", lambda d: DiffusionImputer(random_state=0).fit_transform(d)),
             ("missforest", lambda d: missforest_mixed(d, 0)), ("mode_mean", mode_mean)]:
    t = time.perf_counter(); acc, err = score(f(holey), df, missing, mean, std)
    print(name, m, f"acc {acc:.3f} nrmse {err:.4f} {time.perf_counter()-t:.1f}s", flush=True)
X = df.copy()
for c in cats: X[c] = X[c].cat.codes
X = X.to_numpy(float)
sq, k = 0.0, 0
for j, c in enumerate(df.columns):
    if c in cats: continue
    o = [i for i in range(X.shape[1]) if i != j]
    m = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05).fit(X[~test][:, o], X[~test, j])
    r = missing[:, j]; e = (m.predict(X[r][:, o]) - X[r, j]) / std[j]
    sq += (e**2).sum(); k += len(e); print(" ", c, round(float(np.sqrt((e**2).mean())), 3))
print(name, "GB headroom pooled NRMSE (all other cells observed):", round(float(np.sqrt(sq / k)), 4))
