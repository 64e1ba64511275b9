"""scikit-learn estimators over the pretrained denoiser: imputation, classification, regression.

The estimators are thin: ``fit`` loads the checkpoint, fits a ``TablePreprocessor`` and keeps the (encoded)
table as context; every prediction is an imputation of one table by ``inference.impute``, the one engine.
- ``DiffusionImputer`` imputes the missing cells of a table; a table other than the fit table is imputed
  with the fit table's complete rows as extra context.
- ``DiffusionClassifier`` / ``DiffusionRegressor`` impute the target column of the query rows in the joint
  table [training rows with y; query rows with y unknown]; the training rows are the key rows, so query
  rows attend only to them and never to each other.

Point estimates (the defaults: ``method="point", n_imputations=1``) are one network call at t = T with unknown
numeric cells at the mean of x_T; everything else runs a sampler (``inference.impute``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _assert_all_finite,
    _check_feature_names_in,
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from .checkpoint import DEFAULT_CHECKPOINT, ENV_VAR, Pretrained, load_checkpoint
from .inference import (
    ENGINE_METHODS,
    TEMPERATURE_GRID,
    beats_noise,
    check_ensemble_folds,
    impute,
    linear_target,
    target_trees,
)
from .preprocessing import (
    TablePreprocessor,
    _moments,
    as_table,
    destandardized,
    objects_as_temporal,
    standardized,
    temporal_counts,
    temporal_values,
)
from .sampling import SamplerConfig, context_rows
from .transforms import check_members

_LOADED: dict[tuple, Pretrained] = {}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto": cuda if available, else cpu. A device torch does not know or cannot reach is a ValueError."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible"
        raise ValueError(f"device {device!r} is not available ({why}): use cpu or auto")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} is not available ({torch.cuda.device_count()} GPUs visible)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} is not available (no Apple GPU): use cpu or auto")
    return dev


def load_model(checkpoint: str | os.PathLike | Pretrained | None, device: torch.device) -> Pretrained:
    """The checkpoint as ``load_pretrained`` resolves it (None: $ICL_DIFFUSION_CHECKPOINT or the shipped
    file), loaded once per file version and device; a ``Pretrained`` passes through."""
    if isinstance(checkpoint, Pretrained):
        return checkpoint
    path = Path(checkpoint or os.environ.get(ENV_VAR) or DEFAULT_CHECKPOINT).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (pass a checkpoint path or set ${ENV_VAR})")
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size, str(device))
    if key not in _LOADED:
        if len(_LOADED) >= 4:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = load_checkpoint(path, device)
    return _LOADED[key]


# The predictors' cross-fitting on the training rows (context rows): each fold's targets predicted from the other
# folds, by the network (its whole-context estimate: no local contexts, the views equally weighted) and by the
# trees, for the classifier's temperature (calibrate=True) and both predictors' tree weight (tree_weight="auto").
# Session 31, four regression tables x 3 splits: 3 folds chose the trees on diabetes where they lose (R² 0.428 ->
# 0.407), 5 folds did not; the whole-context estimate instead of the full one, as good at 40% of the time.
CROSS_FIT_FOLDS = 5
# The predictors' target blended with an extremely randomized forest's estimate of it fitted on the training rows
# (``inference.target_trees``), (1 - w) network + w trees, w of this grid chosen by the cross-fitted predictions'
# squared error (regression) or log loss (classification, jointly with the temperature). Session 31, the regression
# tables x 30 splits: mean R² 0.661 -> 0.695 (Boston 0.795 -> 0.870, Hitters 0.455 -> 0.580), fit + predict 1.24 ->
# 3.0 s; the screen's classification tables (3 splits): accuracy 0.912 -> 0.915, log loss 0.205 -> 0.195
# (benchmarks/results/regression.md, classification.md).
TREE_WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
# ... a weight above 0 taken only where its rows' summed loss gain over the network alone exceeds this many paired
# standard errors (``inference.beats_noise``): on a small table a chance win of the trees in three folds costs more
# than it brings (birthwt, 130 training rows: AUC 0.633 -> 0.571 without the gate).
TREE_GAIN_SE = 1.0
# DiffusionRegressor(extrapolate="auto"): a query row beyond the training rows' range carried on along the target's
# closed-form linear fit (``inference.linear_extrapolation``) where the training rows show it pays: their EDGE_FRAC
# of highest and EDGE_FRAC of lowest linear estimate held out and predicted from the others with and without it,
# taken where the squared error falls by more than EXTRAPOLATE_SE paired standard errors (2 more whole-context calls
# at fit). Session 37, the screen's 9 regression tables x 10 splits (benchmarks/results/regression.md): always on,
# R² +0.0007 (splits 0-2) / -0.0015 (splits 3-9; Hitters -0.011 over the 10: heavy-tailed career counts whose linear
# fit overshoots; College applications +0.005); this rule +0.0012 / +0.0001 (College applications +0.005, Hitters
# never on). A first rule, the cross-fitting's held rows beyond the other folds' range, scored +0.0012 / -0.0000 but
# seldom fired (few held rows lie far beyond the rest): off on 300 rows of a linear target, where this one is on.
EXTRAPOLATE_SE = 1.0
EDGE_FRAC = 0.1
# Estimator parameters whose None means the checkpoint's tuned value: parameter -> SamplerConfig field.
TUNED = {"variance_mix": "variance_mix", "center_draws": "center_draws", "calibrate_spread": "calibrate_spread",
         "max_context_rows": "max_context_rows", "context_cells": "context_cells", "batch_size": "chunk_rows",
         "ensemble": "ensemble",
         "ensemble_draws": "ensemble_draws", "local_context_rows": "local_context_rows",
         "ensemble_folds": "ensemble_folds", "blend_inputs": "blend_inputs", "snap_draws": "snap_draws",
         "couple_draws": "couple_draws", "parameter_draws": "parameter_draws"}
# DiffusionRegressor: folds of the cross-validation that weighs the ensemble's two views for the target (as
# RidgeCV chooses its penalty). Stage 15, 9 tables x 30 splits: mean R² 0.651 -> 0.653 (hitters 0.431 -> 0.455),
# fit + predict 0.55 -> 0.83 s on average (benchmarks/results/regression.md, session 16).
REGRESSOR_ENSEMBLE_FOLDS = 3
# DiffusionRegressor: each query row imputed again with its nearest training rows as context, blended with the
# whole-context estimate per column as the training rows' held-out cells favour (``local_context_rows``). Stage 25
# with the blend's engine, 9 tables x 30 splits: mean R² 0.654 -> 0.661 (Boston 0.770 -> 0.795, College 0.857 ->
# 0.884; no table lower by more than 0.001), fit + predict 0.84 -> 1.24 s on average (benchmarks/results/regression.md,
# session 18). The imputer keeps the checkpoint's setting (off): it costs 3-4x there and loses on Gaussian tables.
REGRESSOR_LOCAL_CONTEXT_ROWS = 128
# DiffusionClassifier / DiffusionRegressor: no blend with the network's closed-form inputs (``blend_inputs``): it
# would only cost time. A categorical target is never blended; a numeric one is imputed against the training rows
# (key_rows), whose targets are all known, so the blend has no unknown target cell there to read the network's
# level from and leaves the target as the network estimates it. Blending at the query rows' level instead lost R²
# (stage 25, 9 tables x 10 splits: 0.663 -> 0.660; benchmarks/results/blend_inputs.md). Session 31, with the trees
# among its inputs (the screen's tables, 3 splits): R² 0.6588 -> 0.6564, AUC 0.9278 -> 0.9255: its 10% held cells
# choose worse than the target's own cross-fitting (``tree_weight``).
PREDICTOR_BLEND_INPUTS = False


def _check_count(name: str, value) -> None:
    """A count (of imputations, samples, steps) is an int >= 1; a bool is not one (True would pass as 1)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _checked(estimator, X):
    """X as a table with the columns the fitted ``estimator`` saw: a DataFrame's differing columns named in
    one line (``TablePreprocessor.check_columns``) before scikit-learn's multi-line message; then scikit-learn's
    checks (an array's column count, in one line; its warning when feature names come or go)."""
    table = as_table(X)
    if isinstance(table, pd.DataFrame):
        estimator.preprocessor_.check_columns(table)
    validate_data(estimator, table, reset=False, skip_check_array=True)
    return table


def _seed(random_state) -> int:
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def sampling_settings(method: str, n_steps: int, tuned: SamplerConfig, sampling: bool, n_samples: int) -> tuple[str, int]:
    """What the engine runs. Draws (``sampling``: ``sample``/``predict_samples``; or ``n_samples`` > 1) cannot
    come from the point estimate: "point", and "ddim" when sampling, become the checkpoint's draw sampler
    (``tuned.draw_method``; "ddim"'s ``n_steps`` when more than 1, else ``tuned.draw_steps``)."""
    if method == "point" and not sampling and n_samples == 1:
        return "point", 1
    if method == "point" or (method == "ddim" and sampling):
        return tuned.draw_method, n_steps if method == "ddim" and n_steps > 1 else tuned.draw_steps
    return method, n_steps


def _softmax(logits: np.ndarray) -> np.ndarray:
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def aggregate(samples: np.ndarray, is_cat: np.ndarray) -> np.ndarray:
    """Point estimate (N, F) from imputations (S, N, F): mean of numeric cells, mode of categorical cells."""
    point = samples.mean(0)
    if is_cat.any() and samples.shape[0] > 1:
        codes = np.rint(samples[:, :, is_cat]).astype(np.int64)  # (S, N, Fc)
        counts = (codes[..., None] == np.arange(codes.max() + 1)).sum(0)  # (N, Fc, C)
        point[:, is_cat] = counts.argmax(-1)  # ties: the smallest code
    return point


class _Base(BaseEstimator):
    """Shared parameter checks, model loading and tags."""

    def _check_params(self) -> None:
        method = getattr(self, "method", "point")
        if method not in ENGINE_METHODS:
            raise ValueError(f"method must be one of {ENGINE_METHODS}, got {method!r}")
        for name in ("n_steps", "jump_length", "jump_n_sample", "n_imputations", "max_context_rows", "batch_size"):
            value = getattr(self, name, 1)
            if value is None and name in TUNED:
                continue
            _check_count(name, value)
        for name, zero in (("context_cells", "max_context_rows always"), ("local_context_rows", "off")):
            value = getattr(self, name, None)
            if value is not None and (not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0):
                raise ValueError(f"{name} must be an integer >= 0 (0: {zero}; or None: the checkpoint's), "
                                 f"got {value!r}")
        mix = getattr(self, "variance_mix", None)
        if mix is not None and (not isinstance(mix, (int, float, np.number)) or not 0 <= mix <= 1):
            raise ValueError(f"variance_mix must be a number in [0, 1] (or None: the checkpoint's), got {mix!r}")
        for name in ("center_draws", "calibrate_spread", "ensemble_draws", "blend_inputs", "snap_draws", "couple_draws",
                     "parameter_draws"):
            flag = getattr(self, name, None)
            if flag is not None and not isinstance(flag, (bool, np.bool_)):
                raise ValueError(f"{name} must be True, False or None (the checkpoint's), got {flag!r}")
        extrapolate = getattr(self, "extrapolate", False)
        if not (isinstance(extrapolate, str) and extrapolate == "auto") and not isinstance(extrapolate, (bool, np.bool_)):
            raise ValueError(f"extrapolate must be 'auto' (decided on the training rows), True or False, "
                             f"got {extrapolate!r}")
        trees = getattr(self, "tree_weight", "auto")
        if not (isinstance(trees, str) and trees == "auto") and (
                not isinstance(trees, (int, float, np.number)) or isinstance(trees, bool) or not 0 <= trees <= 1):
            raise ValueError(f"tree_weight must be 'auto' (cross-fitted) or a number in [0, 1], got {trees!r}")
        if getattr(self, "ensemble", None) is not None:
            check_members(self.ensemble)
        check_ensemble_folds(getattr(self, "ensemble_folds", None))

    def _setting(self, name: str):
        """An inference setting: the parameter when set, else the checkpoint's tuned value (``SamplerConfig``)."""
        value = getattr(self, name, None)
        return getattr(self.pretrained_.sampler, TUNED[name]) if value is None else value

    def _context_rows(self, n_columns: int) -> int:
        """Most key rows of a table of ``n_columns`` columns (``sampling.context_rows``)."""
        return context_rows(self._setting("max_context_rows"), self._setting("context_cells"), n_columns)

    def _load(self) -> Pretrained:
        return load_model(self.checkpoint, resolve_device(self.device))

    def _run(self, x, known, is_cat, n_classes, n_samples=None, sampling=False, **kw):
        """The engine (``inference.impute``) with this estimator's settings; ``kw``: more engine arguments, or
        settings overridden."""
        method, n_steps = getattr(self, "method", "point"), getattr(self, "n_steps", 1)
        n_samples = n_samples or getattr(self, "n_imputations", 1)
        method, n_steps = sampling_settings(method, n_steps, self.pretrained_.sampler, sampling, n_samples)
        settings = {
            "n_samples": n_samples, "method": method, "n_steps": n_steps, "jump_length": getattr(self, "jump_length", 1),
            "jump_n_sample": getattr(self, "jump_n_sample", 1), "variance_mix": self._setting("variance_mix"),
            "center_draws": self._setting("center_draws"), "calibrate_spread": self._setting("calibrate_spread"),
            "ensemble": tuple(self._setting("ensemble")), "ensemble_draws": self._setting("ensemble_draws"),
            "max_context_rows": self._setting("max_context_rows"), "context_cells": self._setting("context_cells"),
            "chunk_rows": self._setting("batch_size"),
            "local_context_rows": self._setting("local_context_rows"), "ensemble_folds": self._setting("ensemble_folds"),
            "blend_inputs": self._setting("blend_inputs"), "seed": _seed(self.random_state), "progress": self.progress,
            # Draws returned as such (``sample``, quantiles) are snapped; those averaged into one estimate are not.
            "snap_draws": bool(sampling and self._setting("snap_draws")),
            "couple_draws": bool(sampling and self._setting("couple_draws")),
            "parameter_draws": bool(sampling and self._setting("parameter_draws")),
        }
        return impute(self.pretrained_, x, known, is_cat, n_classes, **{**settings, **kw})

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        return tags


class DiffusionImputer(TransformerMixin, _Base):
    """Fill every missing cell of a table with the pretrained diffusion model (zero-shot, no training).

    Args:
        checkpoint: path of an inference checkpoint (or a loaded ``Pretrained``); None = the shipped file
            or $ICL_DIFFUSION_CHECKPOINT.
        method: "point" (default): the one-call posterior mean, and the checkpoint's draw sampler
            (``SamplerConfig``) when several imputations are asked for; or a sampler: "conditional",
            "repaint", "ddim". n_steps, jump_length, jump_n_sample: the sampler's steps and RePaint jumps.
        n_imputations: imputations averaged by ``transform`` (numeric mean, categorical mode).
        variance_mix: the samplers' ancestral variance between beta_tilde (0) and beta (1), in log space.
        center_draws: shift several imputations of each numeric cell so that their mean is the point estimate.
        calibrate_spread: rescale several imputations of each numeric column about their mean so that their
            spread matches their errors on observed cells of this table hidden for the purpose
            (``inference.spread_scales``; one more sampler run of a few draws), and draw categorical cells from
            the point estimate's class probabilities at a temperature fitted alike (``inference.draw_temperature``).
        ensemble: views of the table the point estimate is averaged over (``transforms.MEMBERS``): "identity"
            and "yeo_johnson" (numeric columns Gaussianized per column); one network call each.
        ensemble_draws: several imputations split among the ensemble's views (drawn in each view's units).
        local_context_rows: the point estimate blended per column with a local one, each row imputed again
            with this many of its nearest rows as context (``local_context.py``; blend weights chosen on
            held-out observed cells); 0: off.
        blend_inputs: each numeric column's estimate blended with the network's closed-form inputs (the
            Gaussian conditional mean, the nearest-rows estimate), moved to the network's level, by weights
            chosen on held-out observed cells (``inference.input_weights``; one more call per view).
        snap_draws: ``sample``'s imputations of a discrete numeric column (at most
            ``inference.SNAP_MAX_VALUES`` distinct observed values) moved onto its observed values, each cell's
            draws in the column's frequencies tilted to their mean (``inference.snap_to_support``); ``transform``'s
            average of several is left as averaged.
        couple_draws: ``sample``'s imputations of a row's missing numeric cells coupled by their conditional
            covariance under a Gaussian fitted to the table (``inference.coupled``): correlated, and each cell's
            spread scaled by how uncertain the row's known cells leave it (its column keeps its calibrated mean
            spread). The network's own draws of two cells of a row are nearly independent and of one width per
            column.
        parameter_draws: ``sample``'s imputations of numeric cells each shifted by how much a Gaussian fitted to a
            bootstrap resample of the table moves their conditional mean (``inference.parameter_shifts``), so that
            the completed tables differ as much as the uncertainty of the table's relations says (a proper multiple
            imputation: Rubin's rules' intervals cover as they claim).
        device: "auto" (cuda if available), "cpu", "cuda", ...
        random_state: seed of the key-row subsample and of the sampler's noise.
        max_context_rows: most key rows a cell attends to across rows. batch_size: query rows per pass.
        context_cells: a narrow table's key rows raised to this many cells (key rows x columns), at most twice
            max_context_rows (``SamplerConfig.context_cells``); 0: max_context_rows always.
            variance_mix, center_draws, calibrate_spread, ensemble, ensemble_draws, local_context_rows,
            blend_inputs, snap_draws, couple_draws, parameter_draws, max_context_rows, context_cells, batch_size:
            None = the checkpoint's tuned value (``pretrained_.sampler``, a
            ``SamplerConfig``).
        progress: show a tqdm progress bar.

    Attributes:
        pretrained_: the loaded model (``Pretrained``).
        preprocessor_: the fitted ``TablePreprocessor``.
        x_fit_, known_fit_: the encoded fit table (N, F) float32 and its known mask, the context.
        n_features_in_, feature_names_in_: as in scikit-learn.
    """

    def __init__(self, checkpoint=None, method="point", n_steps=1, jump_length=1, jump_n_sample=1,
                 n_imputations=1, device="auto", random_state=None, max_context_rows=None, batch_size=None,
                 progress=False, variance_mix=None, center_draws=None, calibrate_spread=None, ensemble=None,
                 ensemble_draws=None, local_context_rows=None, blend_inputs=None, snap_draws=None,
                 couple_draws=None, parameter_draws=None, context_cells=None):
        self.checkpoint = checkpoint
        self.context_cells = context_cells
        self.ensemble = ensemble
        self.ensemble_draws = ensemble_draws
        self.local_context_rows = local_context_rows
        self.blend_inputs = blend_inputs
        self.snap_draws = snap_draws
        self.couple_draws = couple_draws
        self.parameter_draws = parameter_draws
        self.method = method
        self.n_steps = n_steps
        self.jump_length = jump_length
        self.jump_n_sample = jump_n_sample
        self.n_imputations = n_imputations
        self.variance_mix = variance_mix
        self.center_draws = center_draws
        self.calibrate_spread = calibrate_spread
        self.device = device
        self.random_state = random_state
        self.max_context_rows = max_context_rows
        self.batch_size = batch_size
        self.progress = progress

    def fit(self, X, y=None):
        """Fit the column encodings on the observed cells of X and keep X as context."""
        self._check_params()
        table = as_table(X)
        validate_data(self, table, reset=True, skip_check_array=True)
        self.pretrained_ = self._load()
        self.preprocessor_ = TablePreprocessor(self.pretrained_.model.cfg.max_classes).fit(table)
        enc = self.preprocessor_.transform(table)
        self.x_fit_, self.known_fit_ = enc.x, enc.known
        return self

    def _samples(self, X, n_samples: int, sampling: bool):
        """(table, imputations (S, n, F) of its rows or None when nothing is missing); an array is returned as
        it came (a string array stays one), for ``inverse_transform`` to give back its dtype."""
        check_is_fitted(self)
        table = _checked(self, X)
        enc = self.preprocessor_.transform(table)
        source = X if isinstance(X, np.ndarray) else table
        if enc.known.all():  # nothing to fill
            return source, None
        x, known = enc.x, enc.known
        same = known.shape == self.known_fit_.shape and np.array_equal(known, self.known_fit_) and (
            np.array_equal(x, self.x_fit_))
        if not same:  # the fit table's complete rows join as context (all its rows if none is complete)
            ctx = self.known_fit_.all(1)
            ctx = np.flatnonzero(ctx if ctx.any() else np.ones_like(ctx))
            most = self._context_rows(x.shape[1])
            if len(ctx) > most:
                rng = check_random_state(_seed(self.random_state))
                ctx = np.sort(rng.choice(ctx, most, replace=False))
            x = np.concatenate([self.x_fit_[ctx], x])
            known = np.concatenate([self.known_fit_[ctx], known])
        out = self._run(x, known, enc.is_cat, enc.n_classes, n_samples=n_samples, sampling=sampling)
        return source, out[:, len(x) - len(enc.x):]

    def transform(self, X):
        """X with every missing cell imputed (same type, shape, index and dtypes; observed cells kept)."""
        table, samples = self._samples(X, self.n_imputations, sampling=False)
        if samples is None:
            return table.copy()
        return self.preprocessor_.inverse_transform(aggregate(samples, self._is_cat()), table)

    def sample(self, X, n_imputations: int = 5) -> list:
        """``n_imputations`` filled copies of X (multiple imputation): "point" (and one-step "ddim") are replaced
        by the checkpoint's draw sampler (``SamplerConfig.draw_method``, ``draw_steps``) so that they differ."""
        _check_count("n_imputations", n_imputations)
        table, samples = self._samples(X, n_imputations, sampling=True)
        if samples is None:
            return [table.copy() for _ in range(n_imputations)]
        return [self.preprocessor_.inverse_transform(s, table) for s in samples]

    def _is_cat(self) -> np.ndarray:
        return np.array([c.kind == "categorical" for c in self.preprocessor_.columns_])

    def fine_tune(self, tables, out, **kwargs) -> DiffusionImputer:
        """Fine-tune this imputer's checkpoint on ``tables`` (``icl_diffusion.fine_tune``: one table or a
        list; keyword arguments are ``FineTuneConfig`` fields) and return an unfitted copy of this imputer
        on the new weights, written to ``out``."""
        from .finetune import fine_tune

        path = fine_tune(tables, checkpoint=self.checkpoint, out=out, **kwargs)
        return clone(self).set_params(checkpoint=str(path))

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self)
        return _check_feature_names_in(self, input_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def plot_imputations(self, X, n_imputations: int = 5, columns=None, **kwargs):
        """Draw ``n_imputations`` imputations of X (``sample``) and plot, per column with missing cells, the
        observed against the imputed distribution of each draw (``diagnostics.plot_imputations``: keyword
        arguments ``axes``, ``ncols``, ``figsize``). Returns the matplotlib Figure."""
        from .diagnostics import plot_imputations

        return plot_imputations(X, self.sample(X, n_imputations), columns, categorical=self._is_cat(), **kwargs)


class _Predictor(_Base):
    """Prediction as imputation of the target column; the training rows are the key rows."""

    def _fit_context(self, X, y_x: np.ndarray, y_cat: bool, y_classes: int) -> None:
        """Keep [training features, encoded target y_x (n,)] as context (subsampled to max_context_rows)."""
        table = as_table(X)
        self.pretrained_ = self._load()
        self.preprocessor_ = TablePreprocessor(self.pretrained_.model.cfg.max_classes).fit(table)
        enc = self.preprocessor_.transform(table)
        rows = np.arange(len(y_x))
        most = self._context_rows(enc.x.shape[1] + 1)  # the features and the target
        if len(rows) > most:
            rng = check_random_state(self.random_state)
            rows = np.sort(rng.choice(rows, most, replace=False))
        self.x_context_ = np.concatenate([enc.x, y_x[:, None].astype(np.float32)], 1)[rows]
        self.known_context_ = np.concatenate([enc.known, np.ones((len(y_x), 1), bool)], 1)[rows]
        self.is_cat_ = np.append(enc.is_cat, y_cat)
        self.n_classes_ = np.append(enc.n_classes, y_classes)

    def _validate(self, X, y=None):
        self._check_params()
        table = as_table(X)
        validate_data(self, table, y, reset=True, skip_check_array=True)
        check_consistent_length(table, y)
        y = np.asarray(y)
        if y.dtype.kind == "c":
            raise ValueError("Complex data not supported (y)")
        if y.dtype.kind in "OmM" and pd.isna(y).any():  # float NaN gets scikit-learn's own message
            raise ValueError(f"y has {int(pd.isna(y).sum())} missing values (None, NaN, pd.NA or NaT): drop those "
                             "rows or fill them")
        return table, column_or_1d(y, warn=True)

    def _joint(self, X):
        """The joint table [context rows; query rows with the target unknown] and the query row count."""
        check_is_fitted(self)
        enc = self.preprocessor_.transform(_checked(self, X))
        n = len(enc.x)
        x = np.concatenate([self.x_context_, np.concatenate([enc.x, np.zeros((n, 1), np.float32)], 1)])
        known = np.concatenate([self.known_context_, np.concatenate([enc.known, np.zeros((n, 1), bool)], 1)])
        return x, known, n

    def _impute_target(self, X, n_samples=None, sampling=False, return_logits=False):
        x, known, n = self._joint(X)
        keys = np.arange(len(self.x_context_))
        out = self._run(x, known, self.is_cat_, self.n_classes_, n_samples=n_samples, sampling=sampling,
                        key_rows=keys, return_logits=return_logits, target=x.shape[1] - 1,
                        target_weight=self.tree_weight_, extrapolate=getattr(self, "extrapolate_", False))
        if return_logits:
            return out[0][:, -n:, -1], out[1][-n:, -1]
        return out[:, -n:, -1]  # (S, n) standardized target / codes


    def _cross_fitted(self, n_levels: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Out-of-fold predictions of the context rows' targets, ``CROSS_FIT_FOLDS`` seeded folds, each fold's
        targets hidden and predicted from the other folds' rows: the network's whole-context estimate (logits (n,
        ``n_levels``) of a categorical target, values (n,) of a numeric one; no local contexts, the views equally
        weighted) and the trees' (``inference.target_trees``: class probabilities or values). None with fewer than
        two rows a fold."""
        x, known = self.x_context_, self.known_context_
        n, target = len(x), x.shape[1] - 1
        if n < 2 * CROSS_FIT_FOLDS:
            return None
        cat = bool(self.is_cat_[-1])
        fold = check_random_state(_seed(self.random_state)).permutation(n) % CROSS_FIT_FOLDS
        net, trees = np.zeros((n, n_levels) if cat else n), np.zeros((n, n_levels) if cat else n)
        for f in range(CROSS_FIT_FOLDS):
            rest, held = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            hidden = known[held].copy()
            hidden[:, -1] = False  # the held-out rows' targets are what is predicted
            x_f, known_f, keys = np.concatenate([x[rest], x[held]]), np.concatenate([known[rest], hidden]), \
                np.arange(len(rest))
            out = self._run(x_f, known_f, self.is_cat_, self.n_classes_, key_rows=keys, return_logits=cat,
                            local_context_rows=0, ensemble_folds=0)
            net[held] = out[1][len(rest):, -1, :n_levels] if cat else out[0, len(rest):, -1]
            tree = target_trees(self.pretrained_, x_f, known_f, self.is_cat_, self.n_classes_, keys, target,
                                n_levels, _seed(self.random_state))
            trees[held] = tree[len(rest):].numpy()
        return net, trees


class DiffusionClassifier(ClassifierMixin, _Predictor):
    """Zero-shot classifier: the class of each query row is the model's imputation of its target cell.

    Args:
        checkpoint, device, random_state, max_context_rows, context_cells, batch_size, progress, ensemble,
            local_context_rows: as ``DiffusionImputer`` (local contexts are drawn from the training rows only).
            Training sets larger than max_context_rows (more for few features: context_cells) are subsampled
            (with random_state) as the context.
        blend_inputs: as ``DiffusionImputer``; off by default (``PREDICTOR_BLEND_INPUTS``: the target is never
            blended); None: the checkpoint's setting.
        calibrate: fit a softmax temperature to the context rows (``CROSS_FIT_FOLDS``-fold: each fold's
            targets predicted from the other folds, the temperature minimizing their log loss) so that
            predict_proba is calibrated. Costs that many extra calls at fit (shared with ``tree_weight``'s).
        tree_weight: the class probabilities are (1 - w) the network's + w an extremely randomized forest's
            (``TREE_WEIGHT_GRID``, 100 trees fitted on the training rows: thresholds and interactions the network
            reads less well); "auto" (default): w chosen with the temperature on the same cross-fitted
            predictions; a number in [0, 1]: that weight (0: the network alone).

    Attributes:
        classes_: the class labels (sorted), at most the model's max_classes.
        temperature_: the softmax temperature (1.0 without calibration).
        tree_weight_: the trees' weight w in the class probabilities.
        pretrained_, preprocessor_: the loaded model and the fitted feature preprocessor.
        x_context_, known_context_: the context rows (features + target code) encoded, (K, F + 1).
        is_cat_, n_classes_: column types of the joint table (F + 1,).
        n_features_in_, feature_names_in_: as in scikit-learn.
    """

    def __init__(self, checkpoint=None, device="auto", random_state=None, max_context_rows=None,
                 batch_size=None, progress=False, calibrate=True, ensemble=None, local_context_rows=None,
                 blend_inputs=PREDICTOR_BLEND_INPUTS, tree_weight="auto", context_cells=None):
        self.checkpoint = checkpoint
        self.context_cells = context_cells
        self.tree_weight = tree_weight
        self.ensemble = ensemble
        self.local_context_rows = local_context_rows
        self.blend_inputs = blend_inputs
        self.device = device
        self.random_state = random_state
        self.max_context_rows = max_context_rows
        self.batch_size = batch_size
        self.progress = progress
        self.calibrate = calibrate

    def fit(self, X, y):
        table, y = self._validate(X, y)
        if y.dtype.kind in "fc":
            _assert_all_finite(y, input_name="y")
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        max_classes = self._load().model.cfg.max_classes
        if len(self.classes_) > max_classes:
            raise ValueError(f"y has {len(self.classes_)} classes, more than the model's max_classes="
                             f"{max_classes}: merge classes or use DiffusionRegressor for ordered targets")
        self._fit_context(table, codes, True, len(self.classes_))
        self.tree_weight_, self.temperature_ = self._fit_blend()
        return self

    def _fit_blend(self) -> tuple[float, float]:
        """The trees' weight (``tree_weight``, ``TREE_WEIGHT_GRID`` when "auto") and the softmax temperature
        (with ``calibrate``, ``inference.TEMPERATURE_GRID``; else 1) of least log loss over the context rows'
        cross-fitted predictions (``_cross_fitted``): probabilities (1 - w) softmax(network) + w trees, their logs
        divided by the temperature; w > 0 where its gain over the network alone (at its own best temperature) beats
        ``TREE_GAIN_SE`` paired standard errors."""
        auto = isinstance(self.tree_weight, str)
        weights = TREE_WEIGHT_GRID if auto else (float(self.tree_weight),)
        temperatures = TEMPERATURE_GRID if self.calibrate else (1.0,)
        if len(weights) == 1 and len(temperatures) == 1:
            return weights[0], 1.0
        fitted = self._cross_fitted(len(self.classes_))
        if fitted is None:
            return (0.0 if auto else weights[0]), 1.0
        net, trees = fitted
        target = self.x_context_[:, -1].astype(np.int64)
        net = _softmax(net)

        def row_losses(w: float, t: float) -> np.ndarray:
            p = _softmax(np.log(np.clip((1 - w) * net + w * trees, 1e-300, None)) / t)
            return -np.log(p[np.arange(len(target)), target].clip(1e-12))

        losses = {(w, t): row_losses(w, t) for w in weights for t in temperatures}
        w, t = min(losses, key=lambda k: (losses[k].mean(), k))
        if auto and w > 0:
            alone = min((k for k in losses if k[0] == 0), key=lambda k: (losses[k].mean(), k))
            if not beats_noise(torch.as_tensor(losses[alone] - losses[w, t]), TREE_GAIN_SE):
                w, t = alone
        return float(w), float(t)

    def predict_proba(self, X) -> np.ndarray:
        """(n, n_classes) class probabilities: softmax of the target cell's logits at t = T over the fitted
        temperature."""
        _, logits = self._impute_target(X, return_logits=True)
        return _softmax(logits[:, : len(self.classes_)].astype(np.float64) / self.temperature_)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(1)]


class DiffusionRegressor(RegressorMixin, _Predictor):
    """Zero-shot regressor: each prediction is the model's imputation of the query row's target cell.

    Args:
        checkpoint, method, n_steps, jump_length, jump_n_sample, device, random_state, max_context_rows,
            context_cells, batch_size, progress, variance_mix, center_draws, calibrate_spread, ensemble,
            ensemble_draws, local_context_rows: as ``DiffusionImputer`` (local contexts are drawn from the training
            rows only); ``REGRESSOR_LOCAL_CONTEXT_ROWS`` by default; None: the checkpoint's setting.
        n_imputations: imputations averaged by ``predict`` (1 with "point": the posterior mean).
        ensemble_folds: with the two views of the ensemble, the target's estimate weighs them (the Yeo-Johnson
            view's weight 0, 1/2 or 1) as this many folds of cross-validation on the training rows favour
            (``inference.view_weights``; 2 network calls on the training rows per fold); 0: the equal average;
            None: the checkpoint's setting (``SamplerConfig.ensemble_folds``).
        blend_inputs: as ``DiffusionImputer``; off by default (``PREDICTOR_BLEND_INPUTS``); None: the
            checkpoint's setting.
        snap_draws: as ``DiffusionImputer``: ``predict_quantiles``' draws of a discrete target (at most
            ``inference.SNAP_MAX_VALUES`` distinct training values) taken from its observed values.
        tree_weight: the point prediction is (1 - w) the network's + w an extremely randomized forest's
            (``TREE_WEIGHT_GRID``, 100 trees fitted on the training rows); draws are centred on it. "auto"
            (default): w of least squared error over the training rows' ``CROSS_FIT_FOLDS``-fold cross-fitted
            predictions (that many extra calls at fit); a number in [0, 1]: that weight (0: the network alone).
        extrapolate: True: a query row whose numeric features lie beyond the training rows' range is predicted
            at its nearest edge (those features clipped to the range, where the network, the trees and the local
            contexts have seen rows) plus what the target's closed-form linear fit (the Gaussian conditional mean
            fitted to the training rows) gains from the edge to the row: a linear relation is carried on as ridge
            regression would, where the network and the trees alone flatten at the largest target they were shown.
            False: the predictions as they come (flat beyond the edge). "auto" (default): True where the training
            rows show it pays: their ``EDGE_FRAC`` of highest and of lowest linear estimate, held out and predicted
            from the others, come out better with it, by more than ``EXTRAPOLATE_SE`` paired standard errors of
            the squared error (two more calls at fit). Rows inside the range are unchanged either way.

    Attributes:
        y_mean_, y_std_: standardization of the target (mean and population std, as for a feature column);
            y_std_ is 0 for a constant target, which is then predicted as its value.
        y_dtype_: the datetime64 / timedelta64 dtype of a date or duration target, else None. It is regressed
            as its count of ``y_unit_``, the coarsest unit every training value is a whole multiple of (daily
            dates: days); predictions, draws and quantiles come back in whole such units, in that dtype.
        y_unit_: that unit (a pandas unit name: D, h, min, s, ms, us, ns), else None.
        tree_weight_: the trees' weight w in the predictions.
        extrapolate_: whether rows beyond the training rows' range are carried on along the linear fit.
        pretrained_, preprocessor_, x_context_, known_context_, is_cat_, n_classes_, n_features_in_,
            feature_names_in_: as ``DiffusionClassifier``.
    """

    def __init__(self, checkpoint=None, method="point", n_steps=1, jump_length=1, jump_n_sample=1,
                 n_imputations=1, device="auto", random_state=None, max_context_rows=None, batch_size=None,
                 progress=False, variance_mix=None, center_draws=None, calibrate_spread=None, ensemble=None,
                 ensemble_draws=None, local_context_rows=REGRESSOR_LOCAL_CONTEXT_ROWS,
                 ensemble_folds=REGRESSOR_ENSEMBLE_FOLDS,
                 blend_inputs=PREDICTOR_BLEND_INPUTS, snap_draws=None, tree_weight="auto",
                 extrapolate="auto", context_cells=None):
        self.checkpoint = checkpoint
        self.context_cells = context_cells
        self.extrapolate = extrapolate
        self.tree_weight = tree_weight
        self.ensemble = ensemble
        self.ensemble_draws = ensemble_draws
        self.local_context_rows = local_context_rows
        self.ensemble_folds = ensemble_folds
        self.blend_inputs = blend_inputs
        self.snap_draws = snap_draws
        self.method = method
        self.n_steps = n_steps
        self.jump_length = jump_length
        self.jump_n_sample = jump_n_sample
        self.n_imputations = n_imputations
        self.variance_mix = variance_mix
        self.center_draws = center_draws
        self.calibrate_spread = calibrate_spread
        self.device = device
        self.random_state = random_state
        self.max_context_rows = max_context_rows
        self.batch_size = batch_size
        self.progress = progress

    def fit(self, X, y):
        table, y = self._validate(X, y)
        y = objects_as_temporal(np.asarray(y), "the target")  # Timestamps / Timedeltas as objects: their dtype
        # A date or duration target is regressed as its count of ticks and predicted in its own dtype.
        if y.dtype.kind in "mM" and np.datetime_data(y.dtype)[0] not in ("s", "ms", "us", "ns"):
            y = y.astype(f"{y.dtype.kind}8[s]")  # days, weeks, ...: in seconds, a unit pandas also has
        self.y_dtype_ = y.dtype if y.dtype.kind in "mM" else None
        self.y_unit_ = None
        if self.y_dtype_ is not None:  # counts of the coarsest unit (daily dates: days), as a feature's are
            y, self.y_unit_ = temporal_counts(y)
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        # Scaled as a numeric feature column is: any spread is a scale (a target on a 1e-12 scale keeps its std).
        mean, std, constant = _moments(y)
        self.y_mean_, self.y_std_ = mean, 0.0 if constant else std  # a constant target is predicted as itself
        self._fit_context(table, standardized(y, mean, std), False, 0)
        self.tree_weight_, self.extrapolate_ = self._fit_target_rules()
        return self

    def _fit_target_rules(self) -> tuple[float, bool]:
        """The trees' weight: ``tree_weight``, or when "auto" the value of ``TREE_WEIGHT_GRID`` of least squared
        error over the context rows' cross-fitted predictions (``_cross_fitted``), (1 - w) network + w trees, where
        its gain over the network alone beats ``TREE_GAIN_SE`` paired standard errors (else 0); and whether to
        extrapolate: ``extrapolate``, or when "auto" ``_extrapolation_pays``."""
        auto_trees, auto_extrapolate = isinstance(self.tree_weight, str), isinstance(self.extrapolate, str)
        w = 0.0 if auto_trees else float(self.tree_weight)
        extrapolate = False if auto_extrapolate else bool(self.extrapolate)
        if self.y_std_ == 0:
            return w, extrapolate
        fitted = self._cross_fitted(0) if auto_trees else None
        if fitted is not None:
            net, trees = fitted
            y = self.x_context_[:, -1]
            losses = {v: ((1 - v) * net + v * trees - y) ** 2 for v in TREE_WEIGHT_GRID}
            best = min(losses, key=lambda k: (losses[k].mean(), k))
            w = float(best) if beats_noise(torch.as_tensor(losses[0.0] - losses[best]), TREE_GAIN_SE) else 0.0
        if auto_extrapolate:
            extrapolate = self._extrapolation_pays(w)
        return w, extrapolate

    def _extrapolation_pays(self, tree_weight: float) -> bool:
        """Whether ``extrapolate`` predicts the training rows at the ends of the target's linear fit better: the
        ``EDGE_FRAC`` of the rows of highest and lowest closed-form linear estimate (``inference.linear_target``,
        each row's target hidden) held, predicted from the others with and without it (the whole-context estimate,
        trees at ``tree_weight``), where its squared error falls by more than ``EXTRAPOLATE_SE`` paired standard
        errors."""
        x, known = self.x_context_, self.known_context_
        n, target = len(x), x.shape[1] - 1
        k = int(EDGE_FRAC * n)
        if k < 2:
            return False
        hidden = known.copy()
        hidden[:, target] = False
        linear = linear_target(self.pretrained_, [x], known, self.is_cat_, self.n_classes_, np.arange(n), target,
                               hidden)[0]
        order = np.argsort(linear.numpy(), kind="stable")
        held, rest = np.r_[order[:k], order[-k:]], np.sort(order[k:-k])
        x_f, known_f = np.concatenate([x[rest], x[held]]), np.concatenate([known[rest], hidden[held]])
        keys = np.arange(len(rest))
        on, off = (self._run(x_f, known_f, self.is_cat_, self.n_classes_, key_rows=keys, target=target,
                             target_weight=tree_weight, extrapolate=e, local_context_rows=0,
                             ensemble_folds=0)[0, len(rest):, target] for e in (True, False))
        y = x[held, target]
        return beats_noise(torch.as_tensor((off - y) ** 2 - (on - y) ** 2), EXTRAPOLATE_SE)

    def _decode(self, z: np.ndarray) -> np.ndarray:
        return destandardized(z, self.y_mean_, self.y_std_)

    def _as_target(self, values: np.ndarray) -> np.ndarray:
        """Float predictions as y was: numbers, or dates / durations of y's dtype (whole ticks in its range)."""
        return values if self.y_dtype_ is None else temporal_values(values, self.y_dtype_, self.y_unit_)

    def _draws(self, X, n_samples: int) -> np.ndarray:
        _check_count("n_samples", n_samples)
        return self._decode(self._impute_target(X, n_samples=n_samples, sampling=True))

    def predict(self, X) -> np.ndarray:
        """(n,) point predictions: the mean of ``n_imputations`` imputations of the target."""
        return self._as_target(self._decode(self._impute_target(X).mean(0)))

    def predict_samples(self, X, n_samples: int = 100) -> np.ndarray:
        """(n_samples, n) draws from the predictive distribution (the checkpoint's draw sampler replaces "point")."""
        return self._as_target(self._draws(X, n_samples))

    def predict_quantiles(self, X, quantiles=(0.05, 0.5, 0.95), n_samples: int = 100) -> np.ndarray:
        """(n, len(quantiles)) empirical quantiles of ``predict_samples``."""
        q = np.asarray(quantiles, dtype=np.float64)
        if q.ndim != 1 or ((q < 0) | (q > 1)).any():
            raise ValueError(f"quantiles must be a sequence of numbers in [0, 1], got {quantiles!r}")
        return self._as_target(np.quantile(self._draws(X, n_samples), q, axis=0).T)
