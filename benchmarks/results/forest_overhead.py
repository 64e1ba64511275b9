"""scikit-learn's per-forest overhead against fitting the same extremely randomized trees one by one (session 36):
seconds a forest of 10 and 30 trees on a 700 x 19 table (the 1,000 x 20 point estimate's forests: ``tree_regression``
's split candidates and leaves), averaged over 20 fits, and whether the two give the same estimates bit for bit.

    python benchmarks/results/forest_overhead.py
"""
import time

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor
from sklearn.tree import ExtraTreeClassifier, ExtraTreeRegressor

rng = np.random.default_rng(0)
X = rng.normal(size=(700, 19)); y = X[:, 0] * X[:, 1] + rng.normal(size=700); Xq = rng.normal(size=(300, 19))
yc = (y > 0).astype(np.int64) + (y > 1)
def direct(kind, n, X, y, seed, Xq, proba=False):
    rs = np.random.RandomState(seed)
    X32 = np.ascontiguousarray(X, dtype=np.float32); Xq32 = np.ascontiguousarray(Xq, dtype=np.float32)
    trees = []
    for _ in range(n):
        t = kind(max_features=16, min_samples_leaf=1, random_state=rs.randint(np.iinfo(np.int32).max))
        t.fit(X32, y, check_input=False); trees.append(t)
    acc = None
    for t in trees:
        p = t.predict_proba(Xq32, check_input=False) if proba else t.predict(Xq32, check_input=False)
        acc = p.copy() if acc is None else acc + p
    return acc / n
for n in (10, 30):
    t0 = time.perf_counter()
    for _ in range(20):
        f = ExtraTreesRegressor(n, max_features=16, min_samples_leaf=1, random_state=3, n_jobs=1).fit(X, y); a = f.predict(Xq)
    t1 = time.perf_counter()
    for _ in range(20):
        b = direct(ExtraTreeRegressor, n, X, y.astype(np.float64), 3, Xq)
    t2 = time.perf_counter()
    print(n, "forest", (t1-t0)/20, "direct", (t2-t1)/20, "equal", np.array_equal(a, b), np.abs(a-b).max())
f = ExtraTreesClassifier(30, max_features=16, min_samples_leaf=1, random_state=3, n_jobs=1).fit(X, yc); a = f.predict_proba(Xq)
b = direct(ExtraTreeClassifier, 30, X, yc.astype(np.float64), 3, Xq, proba=True)
print("cls equal", np.array_equal(a, b), np.abs(a-b).max())
