"""Extremely randomized trees regressing each numeric column on the row's other cells (and classifying each
categorical one: ``tree_probabilities``): a nonlinear estimate the point estimate's blend may take
(``inference.input_weights``), and with ``DenoiserConfig.tree_feature`` a network input (``feature_estimates``).

Why: the network's inputs are linear (the Gaussian conditional mean), smooth (the kernel ridge regression) or
isotropic local averages (the nearest-rows estimates). A tree partitions the rows on the columns that matter for
the one it predicts: steps and thresholds, interactions, heavy-tailed columns whose extreme rows it keeps apart,
groups named by a categorical column. This is what MissForest's random forests read and the network does not learn.

Definitions: every unknown numeric cell of the table is first filled (``tree_estimates``' ``filled``: the engine hands
the network's estimate, ``inference.TREES_START_NETWORK``; before session 45 the Gaussian conditional mean, the
network's input); for numeric column j an extremely randomized forest (``Forest``) (``MAX_FEATURES`` split candidates a node,
leaves of ``LEAF_ROWS`` rows or more) is fitted on the key rows that know column j, its features the row's other
numeric columns so filled and its categorical columns' codes (-1 where unknown: a level of its own), and predicts
column j in its unknown cells. That is one sweep; ``TREES`` holds the forests' sizes, one per sweep. The columns
are refitted in turn, fewest unknown cells first (``IN_TURN``, MissForest's Gauss-Seidel sweeps), each reading the
others as the sweep has filled them so far: a row missing two related columns then has each estimated from the
other's tree estimate, not from its linear one. Session 29, real grid (up to 16 split candidates; every column of a
sweep refitted at once from the sweep before's fill): one sweep of 30 trees 0.7584, (10, 30) 0.7546, (30, 30)
0.7541, (10, 10, 30) 0.7533 (benchmarks/results/imputation.md).
The estimate is the mean of ``CHAINS`` such chains of sweeps, seeded apart: each fills the other columns its own
way, and the mean is over those fills as much as over the trees (as multiple imputation's chains).
Trees do not extrapolate (a leaf's value is an average of fitted rows). ``extrapolated`` is the trees' estimate
where a row's known cells lie beyond the range of the rows a column's forest learnt from moved by what the
Gaussian conditional mean gains between the row as it is and the row clipped to that range (``linear_excess``):
a column missing where the other columns are extreme (MAR) follows them out linearly, as the regressor's
``extrapolate`` does for its target. The blend offers it as an input of its own (``inference.ENGINE_INPUTS``), so
the held cells decide per table and column whether the linear excess pays (session 40: on AER/Guns MAR 10% the
trees alone 0.597 -> 0.308; added to the trees inside their sweeps it won there and lost elsewhere, real grid
0.7529 -> 0.7515, se 0.0018; benchmarks/results/imputation.md). It replaced session 27's cruder rule (a cell whose
Gaussian estimate left the range of the column's fitted values kept that estimate: real grid 0.7582 -> 0.7614). Trees do
not see monotone transforms of their features, so the engine fits them once, in the table's units, for every view.
A linear part (trees on the residuals of a least-squares fit) was worse on the real grid (session 27). Seeded: the
same table gets the same estimate.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from sklearn import config_context
from sklearn.tree import ExtraTreeClassifier, ExtraTreeRegressor

from .gaussian_feature import EM_MAX_ITERS, EM_TOL, gaussian_estimate, table_gaussian

TREES = (1, 1, 3)  # trees per forest, one entry per sweep (the first sweep reads the table as ``filled`` fills it)
# Independent chains of those sweeps, their final estimates averaged (``tree_estimates``). A chain of few trees a
# forest fills the other columns noisily, each its own way; its last forests read that fill, and the mean over
# chains is over fills as much as over trees, where one chain of many trees plugs in one smooth fill. Session 44,
# real grid (shipped weights, the point estimate; one chain of (10, 10, 30) 0.7423): 3 chains of (4, 4, 10) +0.0017
# (se 0.0009), 6 of (2, 2, 5) +0.0031 (0.0011), 10 of (1, 1, 3) +0.0057 (0.0010) at the same time a table, 20 of
# (1, 1, 2) +0.0064 (0.0011) at 25% more, 25 of two sweeps (1, 1) +0.0019 (0.0016) (benchmarks/results/imputation.md).
# The held-out call that chooses the blend's weights (``inference.input_weights``) takes this many; the final call
# takes ``inference.FINAL_CHAINS`` (session 47: 5 and 20, against 10 and 10 before), each of ``inference.FINAL_TREES``.
# Since session 52 the held-out call fits ``inference.HELD_CHAINS`` where these show the trees helping.
CHAINS = 5
CHAIN_SEED = 7919  # a chain's forests are seeded this much apart from the chain before's
# A sweep refits the columns in turn, fewest unknown cells first, each reading the others as the sweep has filled
# them so far (MissForest's Gauss-Seidel sweeps), not all at once from the sweep before's fill. Session 45, real grid
# (shipped weights, the point estimate; at once 0.7366): +0.0026 (se 0.0009), Boston +0.0085, AER/Guns +0.0043
# (MCAR 30% 0.383 -> 0.363); the same number of forests. Trees alone on AER/Guns MCAR 30%, seeds 0-2 (MissForest-like
# 0.320): at once 0.379, in turn 0.361 (runs of benchmarks/results/tree_chains.py's setup).
IN_TURN = True
LEAF_ROWS = 1
# Split candidates per node: every feature up to this many (the real grid's tables have at most 16), a random
# subset of this many beyond (a forest's time grows with them: 2,048 rows x 100 columns, 67 -> 16 s a fit), or
# "sqrt", a random forest's choice (session 29: real grid 0.7539 against 0.7533, 15% less time per call, but a
# table of three columns gets one candidate, a random split, and loses its group structure).
MAX_FEATURES = 16
CATEGORICAL = True  # categorical columns' codes as features (-1 where unknown)
MIN_ROWS = 10  # a column known in fewer key rows gets no estimate (the filled value)
MAX_ROWS = 2048  # fit_rows: most rows a forest is fitted on
LEVEL_TREES = 30  # trees per forest of a categorical column (``tree_probabilities``)
# The categorical columns' classifiers read each of the numeric chains' fills (``chain_fills``) instead of the
# Gaussian estimate, ``LEVEL_TREES`` split among them and their probabilities averaged. Session 44, shipped weights,
# mixed tables' accuracy: +0.0017 (se 0.0010) / +0.0008 (0.0009) on seeds 0-2 / 3-5, at 46% more time a mixed table
# with the chains fitted again for the classifiers. Session 45 prototyped handing them the numeric trees' chains where
# both are fitted (removed): the same accuracy (+0.0015 (se 0.0010) / +0.0008 (0.0011)), 14% more time on four mixed
# tables (the last call fits the numeric trees only where their blend weight is not 0, rarely on mixed tables; the
# classifiers then fit chains of their own). Off: within the noise for its cost.
LEVEL_CHAINS = False
# The chains are independent: on torch's threads (``torch.get_num_threads``) they are fitted side by side, each
# forest on one thread (most forests hold one tree, so threads within a forest idle); each chain is seeded by its
# index, so any number of threads gives the same fills, bit for bit. Off: one chain after another, each forest's trees
# on the threads. Session 53, two threads: the point estimate of ISLR/College 7.8 -> 5.3 s
# (benchmarks/results/speed_e2e.md).
PARALLEL_CHAINS = True


def fit_rows(n_rows: int, key_rows: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(R,) sorted rows of a table of ``n_rows`` for the trees of a table imputed as a whole: every row, or where
    they are more than ``MAX_ROWS`` the ``key_rows`` and a seeded choice of the others up to that number."""
    if n_rows <= MAX_ROWS:
        return torch.arange(n_rows)
    others = torch.ones(n_rows, dtype=torch.bool)
    others[key_rows.cpu()] = False
    others = others.nonzero().squeeze(1)
    extra = others[torch.randperm(len(others), generator=torch.Generator().manual_seed(seed))]
    return torch.cat([key_rows.cpu(), extra[: max(MAX_ROWS - len(key_rows), 0)]]).sort().values


class Forest:
    """An extremely randomized forest, scikit-learn's ``ExtraTreesRegressor`` / ``ExtraTreesClassifier`` without
    their per-tree overhead (cloning every tree through ``get_params``, joblib's dispatch, input checks: a third of
    the trees' time on a 1,000 x 20 table, session 38): ``trees`` trees of ``kind`` (``ExtraTreeRegressor`` or
    ``ExtraTreeClassifier``) seeded as the scikit-learn forest of ``random_state=seed`` seeds them, fitted on every
    row (no bootstrap, as theirs), their estimates summed in order and averaged, so its estimates are theirs bit for
    bit (tested). A classifier's labels are encoded as theirs: ``classes_`` the sorted distinct labels."""

    def __init__(self, kind, trees: int, seed: int, **settings):
        seeds = _stream(seed)
        self.seeds = [int(seeds.randint(np.iinfo(np.int32).max)) for _ in range(trees)]
        self.trees = [kind(random_state=s, **settings) for s in self.seeds]
        self.classes_ = None

    def fit(self, features: np.ndarray, target: np.ndarray, *, threads: int = 1) -> Forest:
        """Fits the trees on ``features`` (R, D) and ``target`` (R,) on ``threads`` threads (scikit-learn's trees
        release the interpreter lock while they grow; each is seeded before, so any number gives the same trees)."""
        x = np.ascontiguousarray(features, dtype=np.float32)
        if isinstance(self.trees[0], ExtraTreeClassifier):
            self.classes_, target = np.unique(target, return_inverse=True)
        y = np.ascontiguousarray(np.reshape(target, (-1, 1)), dtype=np.float64)
        threads = min(threads, len(self.trees))
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda pair: _fit(*pair, x, y), zip(self.trees, self.seeds)))
        else:
            for tree, seed in zip(self.trees, self.seeds):
                _fit(tree, seed, x, y)
        return self

    def _mean(self, read, features: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(features, dtype=np.float32)
        total = read(self.trees[0])(x, check_input=False).astype(np.float64)
        for tree in self.trees[1:]:
            total += read(tree)(x, check_input=False)
        return total / len(self.trees)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(M,) float64: the regressor's mean of its trees' estimates of the rows ``features`` (M, D)."""
        return self._mean(lambda tree: tree.predict, features)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(M, len(``classes_``)) float64: the classifier's mean of its trees' class probabilities."""
        return self._mean(lambda tree: tree.predict_proba, features)


def _fit(tree, seed: int, x: np.ndarray, y: np.ndarray) -> None:
    """Fits one tree without scikit-learn's checks of its parameters (set here, valid) and of its input (``Forest.fit``
    makes it as the tree needs it): an eighth of the trees' time on a 1,000 x 20 table (session 46). The setting is
    per thread, so it is made in the thread that fits. The tree draws its splitter's seed from ``_stream(seed)``, the
    stream scikit-learn makes of ``random_state=seed``."""
    tree.random_state = _stream(seed)
    with config_context(skip_parameter_validation=True):
        tree.fit(x, y, check_input=False)


_STREAMS = threading.local()


def _stream(seed: int) -> np.random.RandomState:
    """This thread's ``RandomState`` seeded with ``seed``: the stream of ``np.random.RandomState(seed)`` (the legacy
    seeding of both) without making one, 1.5 against 110 microseconds, which a forest of one tree paid twice (session
    53, one thread: 5.19 -> 4.73 s a point estimate on four tables, benchmarks/results/speed_e2e.md). Read before the
    thread seeds it again."""
    stream = getattr(_STREAMS, "stream", None)
    if stream is None:
        stream = _STREAMS.stream = np.random.RandomState(0)
    stream.seed(seed)
    return stream


def _forest(kind, trees: int, features: np.ndarray, target: np.ndarray, seed: int,
            threads: int | None = None) -> Forest:
    """A ``Forest`` of ``trees`` trees of ``kind`` with the split candidates (``MAX_FEATURES`` of the D features) and
    leaves (``LEAF_ROWS``) of every forest here, fitted on ``features`` (R, D) and ``target`` (R,) on ``threads``
    threads (default as many as torch uses, ``torch.get_num_threads``); the same table gets the same estimate on any
    number, bit for bit."""
    n_features = features.shape[1]
    candidates = MAX_FEATURES if isinstance(MAX_FEATURES, str) else min(MAX_FEATURES, n_features)
    forest = Forest(kind, trees, seed, max_features=candidates, min_samples_leaf=LEAF_ROWS)
    return forest.fit(features, target, threads=torch.get_num_threads() if threads is None else threads)


def _class_probabilities(forest, features: np.ndarray, n_levels: int, device) -> torch.Tensor:
    """A fitted classifier's probabilities (M, ``n_levels``) float64 of the rows ``features`` (M, D), 0 at the levels
    it never saw."""
    out = torch.zeros(len(features), n_levels, dtype=torch.float64, device=device)
    out[:, torch.as_tensor(forest.classes_, device=device).long()] = torch.as_tensor(
        forest.predict_proba(features), dtype=torch.float64, device=device)
    return out


def chain_fills(filled: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor, key_rows: torch.Tensor,
                seed: int = 0, chains: int | None = None, sweeps: tuple[int, ...] | None = None,
                first: int = 0) -> list[np.ndarray]:
    """The ``chains`` (default ``CHAINS``) chains of ``sweeps`` (default ``TREES``: trees per forest, one entry per
    sweep) of ``tree_estimates``: each chain's last fill (N, D) float64 of the numeric columns (known cells as they
    are, unknown ones the chain's last forests' estimate, or as ``filled`` where no forest is fitted). ``filled``
    (N, F): known cells as they are, the others a first estimate (the engine's: the network's,
    ``inference.TREES_START_NETWORK``); ``key_rows`` (K,): the rows a forest is fitted on. The first chains are the
    same for any number of them (each seeded by its index); ``first``: the chains before it are not fitted (a caller
    that has them)."""
    chains = CHAINS if chains is None else chains
    sweeps = TREES if sweeps is None else sweeps
    numeric = (~is_cat).nonzero().squeeze(1).tolist()
    start = filled[:, numeric].double().cpu().numpy()  # (N, D)
    if len(numeric) + int(is_cat.sum()) < 2:  # no other column to read
        return [start] * (chains - first)
    seen = known[:, numeric].cpu().numpy()
    keys = np.sort(key_rows.cpu().numpy())
    levels = torch.where(known, filled, -1.0)[:, is_cat].double().cpu().numpy()  # (N, C): codes, -1 unknown
    if not CATEGORICAL:
        levels = levels[:, :0]
    # in turn: fewest unknown cells first (MissForest's order; ties in the table's order)
    order = np.argsort((~seen).sum(0), kind="stable") if IN_TURN else range(len(numeric))
    threads = min(torch.get_num_threads(), chains - first) if PARALLEL_CHAINS else 1

    def chain_fill(chain: int) -> np.ndarray:
        z = start.copy() if IN_TURN else start
        for trees in sweeps:
            refilled = z if IN_TURN else z.copy()
            for d in order:
                unknown = np.flatnonzero(~seen[:, d])
                train = keys[seen[keys, d]]
                if len(unknown) == 0 or len(train) < MIN_ROWS:
                    continue
                features = np.column_stack([np.delete(z, d, axis=1), levels])
                forest = _forest(ExtraTreeRegressor, trees, features[train], z[train, d], seed + d + CHAIN_SEED * chain,
                                 threads=1 if threads > 1 else None)
                refilled[unknown, d] = forest.predict(features[unknown])
            z = refilled
        return z

    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(chain_fill, range(first, chains)))
    return [chain_fill(chain) for chain in range(first, chains)]


def tree_estimates(filled: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor, key_rows: torch.Tensor,
                   seed: int = 0, chains: int | None = None, sweeps: tuple[int, ...] | None = None,
                   first: int = 0) -> torch.Tensor:
    """(N, F) estimates of every numeric cell with unknown cells in its column, the mean of ``chain_fills``' ``chains``
    of ``sweeps`` (from chain ``first`` on); ``filled`` (N, F) (known cells as they are, the others a first
    estimate, as ``chain_fills``') where known or where no forest is fitted; categorical columns as filled.
    ``key_rows`` (K,): the rows a forest is fitted on."""
    out = filled.clone()
    numeric = ~is_cat
    seen = known[:, numeric].cpu().numpy()
    start = filled[:, numeric].double().cpu().numpy()
    fills = chain_fills(filled, known, is_cat, key_rows, seed, chains, sweeps, first)
    mean = sum(fills) / len(fills)
    out[:, numeric] = torch.as_tensor(np.where(seen, start, mean), dtype=out.dtype, device=out.device)
    return out


def extrapolated(estimates: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor,
                 key_rows: torch.Tensor) -> torch.Tensor:
    """``tree_estimates``' ``estimates`` (N, F) (known cells as they are) with each unknown numeric cell moved by its
    ``linear_excess`` beyond the range of the ``key_rows`` (K,) its forest learnt from."""
    numeric = (~is_cat).nonzero().squeeze(1)
    excess = linear_excess(estimates[:, numeric], known[:, numeric], np.sort(key_rows.cpu().numpy()))
    out = estimates.clone()
    out[:, numeric] = (estimates[:, numeric].double() + excess.to(estimates.device)).to(estimates.dtype)
    return out


def linear_excess(x: torch.Tensor, known: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """(N, D) float64 of a numeric table x (N, D) with cells ``known`` (N, D): for each unknown cell (i, d), the
    Gaussian conditional mean of column d given row i's known cells, less the same with those cells clipped to the
    range column by column of the known cells of the ``rows`` that know d (the rows its forest learns from); 0 for
    a row inside that range and at known cells. The Gaussian is fitted to the ``rows``' known cells by EM until it
    converges, as the network's closed-form input at inference."""
    n, width = x.shape
    out = torch.zeros(n, width, dtype=torch.float64)
    if width < 2:
        return out
    z, seen = x.double().cpu()[None], known.cpu()[None]
    no_cat = torch.zeros(1, width, dtype=torch.bool)
    key_mask = torch.zeros(1, n, dtype=torch.bool)
    key_mask[0, torch.as_tensor(rows, dtype=torch.long)] = True
    mean, cov = table_gaussian(z, seen, no_cat, key_mask, EM_MAX_ITERS, EM_TOL)
    values, k = z[0].numpy(), seen[0].numpy()
    in_rows = np.zeros(n, dtype=bool)
    in_rows[rows] = True
    for d in range(width):
        shown = k & (in_rows & k[:, d])[:, None]  # (N, D): the cells the forest of column d reads in its rows
        lo = np.where(shown, values, np.inf).min(0)
        hi = np.where(shown, values, -np.inf).max(0)
        clipped = np.where(k & shown.any(0)[None, :], np.clip(values, np.minimum(lo, hi), hi), values)
        beyond = np.flatnonzero(~k[:, d] & (clipped != values).any(1))
        if len(beyond) == 0:
            continue
        both = torch.as_tensor(np.stack([values[beyond], clipped[beyond]]))  # (2, M, D)
        est = gaussian_estimate(both, seen[:, beyond].expand(2, -1, -1), no_cat.expand(2, -1), cov.expand(2, -1, -1),
                                mean.expand(2, -1))
        out[torch.as_tensor(beyond), d] = (est[0, :, d] - est[1, :, d]).double()
    return out


def tree_probabilities(filled: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor, n_levels: int,
                       key_rows: torch.Tensor, seed: int = 0,
                       columns: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities (N, F, ``n_levels``) float64 of every unknown categorical cell, and the columns (F,) bool
    that have them: for categorical column j with unknown cells (of ``columns`` (F,) bool, default all) an
    extremely randomized classifier (``Forest``, ``LEVEL_TREES`` trees, split candidates and leaves as the
    regressors') is fitted on the ``key_rows`` that know it, its features the row's numeric columns as ``filled`` (N, F) has them (the
    Gaussian estimate where unknown) and its other categorical columns' codes (-1 where unknown), and predicts
    column j's unknown cells; a level it never saw gets 0. Zero elsewhere (known cells, numeric columns, a column
    known in fewer than ``MIN_ROWS`` key rows). Seeded."""
    probs = torch.zeros(*filled.shape, n_levels, dtype=torch.float64, device=filled.device)
    fitted = torch.zeros(filled.shape[1], dtype=torch.bool, device=filled.device)
    wanted = is_cat if columns is None else is_cat & columns.to(is_cat.device)
    if filled.shape[1] < 2 or not bool(wanted.any()):
        return probs, fitted
    z = filled[:, ~is_cat].double().cpu().numpy()  # (N, D)
    levels = torch.where(known, filled, -1.0)[:, is_cat].double().cpu().numpy()  # (N, Fc): codes, -1 unknown
    seen = known.cpu().numpy()
    keys = np.sort(key_rows.cpu().numpy())
    fills = chain_fills(filled, known, is_cat, key_rows, seed) if LEVEL_CHAINS else [z]
    for c, j in enumerate(is_cat.nonzero().squeeze(1).tolist()):
        unknown = np.flatnonzero(~seen[:, j])
        train = keys[seen[keys, j]]
        if not bool(wanted[j]) or len(unknown) == 0 or len(train) < MIN_ROWS:
            continue
        rows = torch.as_tensor(unknown, device=probs.device)
        for k, fill in enumerate(fills):
            features = np.column_stack([fill, np.delete(levels, c, axis=1)])
            forest = _forest(ExtraTreeClassifier, max(LEVEL_TREES // len(fills), 1), features[train],
                             levels[train, c].astype(np.int64), seed + j + CHAIN_SEED * k)
            probs[rows, j] += _class_probabilities(forest, features[unknown], n_levels, probs.device) / len(fills)
        fitted[j] = True
    return probs, fitted


# The predictors' target (``target_estimates``): one forest, larger than the imputation's (one column, not every one;
# session 31's prototype, benchmarks/results/target_trees.py, used scikit-learn's 100).
TARGET_TREES = 100


def target_estimates(filled: torch.Tensor, known: torch.Tensor, is_cat: torch.Tensor, n_levels: int,
                     key_rows: torch.Tensor, column: int, seed: int = 0) -> torch.Tensor:
    """The trees' estimate of column ``column``'s unknown cells, the predictors' target: (N,) float64 values of a
    numeric column, (N, ``n_levels``) float64 class probabilities of a categorical one (a level it never saw gets
    0); 0 at its known cells and wherever no forest is fitted (fewer than ``MIN_ROWS`` key rows know it, or no
    other column). One extremely randomized forest (``Forest``) of ``TARGET_TREES`` trees (split
    candidates and leaves as ``tree_estimates``'), fitted on the ``key_rows`` that know the column, its features
    the row's other numeric columns as ``filled`` (N, F) has them (the Gaussian estimate where unknown) and its
    other categorical columns' codes (-1 where unknown). Seeded."""
    cat = bool(is_cat[column])
    out = torch.zeros(len(filled), *((n_levels,) if cat else ()), dtype=torch.float64, device=filled.device)
    seen = known[:, column].cpu().numpy()
    keys = np.sort(key_rows.cpu().numpy())
    unknown, train = np.flatnonzero(~seen), keys[seen[keys]]
    others = torch.ones(filled.shape[1], dtype=torch.bool)
    others[column] = False
    numeric, levels = others & ~is_cat.cpu(), others & is_cat.cpu()
    if len(unknown) == 0 or len(train) < MIN_ROWS or not bool(others.any()):
        return out
    codes = torch.where(known, filled, -1.0)  # categorical features: codes, -1 unknown
    features = torch.cat([filled[:, numeric.to(filled.device)], codes[:, levels.to(filled.device)]], 1)
    features = features.double().cpu().numpy()
    y = filled[:, column].double().cpu().numpy()
    forest = _forest(ExtraTreeClassifier if cat else ExtraTreeRegressor, TARGET_TREES, features[train],
                     y[train].astype(np.int64) if cat else y[train], seed + column)
    rows = torch.as_tensor(unknown, device=out.device)
    out[rows] = (_class_probabilities(forest, features[unknown], n_levels, out.device) if cat else
                 torch.as_tensor(forest.predict(features[unknown]), dtype=torch.float64, device=out.device))
    return out


# The network's tree input (``DenoiserConfig.tree_feature``): one chain of these sweeps, cheaper than the blend's
# (training fits it on every table of every batch).
FEATURE_SWEEPS = (3,)


def feature_estimates(filled: torch.Tensor, seen: torch.Tensor, is_cat: torch.Tensor,
                      key_mask: torch.Tensor | None = None,
                      keys: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's tree input: (estimates (B, N, F), fitted (B, N, F) bool) of a batch ``filled`` (B, N, F) (numeric
    cells: known as they are, unknown the Gaussian estimate; categorical: codes where ``seen``) with cells ``seen``
    (B, N, F) and columns ``is_cat`` (B, F). Each table's forests (``tree_estimates``, one chain of
    ``FEATURE_SWEEPS``) are fitted on its key rows (``key_mask`` (B, N), None = every row) or, given ``keys``, on
    those cached rows (filled (B, K, F), seen (B, K, F): a query chunk's key rows); ``fitted`` marks the unknown
    numeric cells a forest estimated (estimates are ``filled`` elsewhere). Seeded: the same table gets the same
    estimate, and a sampler's identical copies of a table are fitted once. A column no row knows (padding) is neither
    fitted nor read."""
    out, fitted = filled.clone(), torch.zeros_like(seen)
    n = filled.shape[1]
    for b in range(filled.shape[0]):
        same = b > 0 and (key_mask is None or torch.equal(key_mask[b], key_mask[0]))
        if keys is not None and len(keys[0]) > 1:  # key rows of its own: the same only if they are too
            same = same and torch.equal(keys[0][b], keys[0][0]) and torch.equal(keys[1][b], keys[1][0])
        if same and torch.equal(seen[b], seen[0]) and torch.equal(filled[b], filled[0]):  # a sampler's copies
            out[b], fitted[b] = out[0], fitted[0]
            continue
        if keys is None:
            table, known = filled[b], seen[b]
            rows = torch.arange(n) if key_mask is None else key_mask[b].cpu().nonzero().squeeze(1)
        else:  # one cached copy of the key rows serves every sample
            k = b if len(keys[0]) > 1 else 0
            table, known = torch.cat([keys[0][k], filled[b]]), torch.cat([keys[1][k], seen[b]])
            rows = torch.arange(keys[0].shape[1])
        columns = known.any(0).cpu()  # a column no row knows (padding, or a table that knows nothing) is left out
        if int(columns.sum()) < 2 or len(rows) < MIN_ROWS:
            continue
        where = columns.nonzero().squeeze(1)
        estimates = tree_estimates(table[:, where], known[:, where], is_cat[b, where].cpu(), rows,
                                   chains=1, sweeps=FEATURE_SWEEPS)[-n:]
        numeric = ~is_cat[b, where].to(seen.device)
        done = ~known[-n:, where] & numeric & (known[rows][:, where].sum(0) >= MIN_ROWS)
        out[b][:, where.to(out.device)] = estimates.to(out.dtype)
        fitted[b][:, where.to(out.device)] = done
    return out, fitted
