"""impute_standardized / TableDenoiser: invariants, determinism, chunked context == joint forward, caching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from icl_diffusion.diffusion import GaussianDiffusion
from icl_diffusion.inference import TableDenoiser, choose_key_rows, forward_passes, impute_standardized
from icl_diffusion.model import Denoiser, DenoiserConfig
from icl_diffusion.sampling import count_calls, repaint_schedule, sample
from icl_diffusion.scaling import CLIP

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest: tiny tensors, shared 2-core machine

IS_CAT = torch.tensor([False, True, False, False, True])
N_CLASSES = torch.tensor([0, 3, 0, 0, 4])
SETTINGS = {
    "ddim-1": {"method": "ddim", "n_steps": 1},
    "ddim-4": {"method": "ddim", "n_steps": 4},
    "conditional-4": {"method": "conditional", "n_steps": 4},
    "conditional-4-jumps": {"method": "conditional", "n_steps": 4, "jump_length": 2, "jump_n_sample": 2},
    "repaint-4-jumps": {"method": "repaint", "n_steps": 4, "jump_length": 2, "jump_n_sample": 2},
}
# The point estimate and the draws' centre with local contexts (local_context.py) on a 40-row table.
LOCAL = {"local_context_rows": 8, "local_query_rows": 4}


def make_model(row_attention: str = "full") -> Denoiser:
    torch.manual_seed(0)
    cfg = DenoiserConfig(d_model=32, n_blocks=2, n_heads=4, max_classes=5, row_attention=row_attention,
                         n_inducing=8, gaussian_em_iters=3)
    return Denoiser(cfg).eval()


def make_table(seed: int, N: int = 40, p_known: float = 0.7, complete_rows: int = 0):
    """Standardized table (N, 5) with NaN at unknown cells; the first ``complete_rows`` rows fully known."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(N, 1, generator=g)
    x = 0.8 * z + 0.6 * torch.randn(N, 5, generator=g)  # correlated numeric columns
    codes = torch.stack([torch.randint(0, max(int(c), 1), (N,), generator=g) for c in N_CLASSES], 1).float()
    x = torch.where(IS_CAT, codes, x)
    known = torch.rand(N, 5, generator=g) < p_known
    known[:complete_rows] = True
    return torch.where(known, x, torch.full_like(x, float("nan"))), known


def _impute(model, x, known, seed=0, **kw):
    return impute_standardized(model, GaussianDiffusion(), x, known, IS_CAT, N_CLASSES,
                               generator=torch.Generator().manual_seed(seed), **kw)


def _check_invariants(out, x, known):
    assert bool(torch.isfinite(out).all())
    for s in range(out.shape[0]):
        assert torch.equal(out[s][known], x[known]), "known cells bit for bit"
    cat = IS_CAT.expand_as(out)
    codes = out[cat]
    assert torch.equal(codes, codes.round()) and bool((codes >= 0).all())
    assert bool((out < N_CLASSES.float()).where(cat, torch.ones_like(cat)).all())


@pytest.mark.parametrize("setting", SETTINGS.values(), ids=SETTINGS.keys())
@pytest.mark.parametrize("max_context_rows", [512, 16])
def test_impute_invariants_and_determinism(setting, max_context_rows):
    model = make_model()
    x, known = make_table(0)
    kw = dict(n_samples=2, max_context_rows=max_context_rows, chunk_rows=7, **setting)
    out = _impute(model, x, known, **kw)
    assert out.shape == (2,) + x.shape
    _check_invariants(out, x, known)
    assert torch.equal(_impute(model, x, known, **kw), out), "same generator seed -> same result"
    if setting["method"] != "ddim":
        assert not torch.equal(out[0], out[1]), "samples are distinct draws"
    # No generator: a fixed default seed, still deterministic.
    a = impute_standardized(model, GaussianDiffusion(), x, known, IS_CAT, N_CLASSES, **kw)
    assert torch.equal(a, impute_standardized(model, GaussianDiffusion(), x, known, IS_CAT, N_CLASSES, **kw))


def test_impute_without_categorical_columns_and_nothing_unknown():
    model = make_model()
    x, known = make_table(1)
    is_cat, n_classes = torch.zeros(5, dtype=torch.bool), torch.zeros(5, dtype=torch.long)
    x = torch.where(known, torch.nan_to_num(x), x)
    out = impute_standardized(model, GaussianDiffusion(), x, known, is_cat, n_classes, method="conditional",
                              n_steps=3)
    assert bool(torch.isfinite(out).all()) and torch.equal(out[0][known], x[known])
    full = torch.nan_to_num(x)
    out = impute_standardized(model, GaussianDiffusion(), full, torch.ones_like(known), is_cat, n_classes)
    assert torch.equal(out[0], full)


class CountForwards:
    """Counts the network's forward passes (one sampler call may be several: key rows + query chunks)."""

    def __init__(self, model):
        self.n = 0
        self.handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.n += 1


def _joint_denoiser(model, key_rows, N):
    """All rows in one forward pass; rows attend only to the key rows (key_mask): the unchunked reference. The
    Gaussian input's fit is inference's (``fit_gaussian``: EM run to convergence) on the key rows, as the engine's."""

    def den(x_t, t, known):
        S = x_t.shape[0]
        key_mask = torch.zeros(S, N, dtype=torch.bool)
        key_mask[:, key_rows] = True
        fit = model.fit_gaussian(x_t[:1, key_rows], known[:1, key_rows], IS_CAT[None], N_CLASSES[None])
        return model(x_t, t, known, IS_CAT.expand(S, -1), N_CLASSES.expand(S, -1), key_mask=key_mask,
                     gaussian_fit=fit)

    return den


@torch.no_grad()
@pytest.mark.parametrize("row_attention", ["full", "isab"])
@pytest.mark.parametrize("complete_rows", [30, 0], ids=["cached", "uncached"])
@pytest.mark.parametrize("setting", ["ddim-4", "conditional-4", "conditional-4-jumps", "repaint-4-jumps"])
def test_chunked_context_equals_joint_forward(row_attention, complete_rows, setting):
    model = make_model(row_attention)
    N, max_rows, chunk = 40, 16, 7
    x, known = make_table(2, N=N, p_known=0.6, complete_rows=complete_rows)
    kw = SETTINGS[setting]
    counter = CountForwards(model)
    out = _impute(model, x, known, seed=3, n_samples=2, max_context_rows=max_rows, chunk_rows=chunk, **kw)
    counter.handle.remove()
    # The reference: same key rows (same generator draw), same sampler, one joint forward per call.
    g = torch.Generator().manual_seed(3)
    key_rows = choose_key_rows(known, max_rows, g)
    x_rep, k_rep = x[None].expand(2, -1, -1).contiguous(), known[None].expand(2, -1, -1)
    ref = sample(_joint_denoiser(model, key_rows, N), GaussianDiffusion(), x_rep, k_rep, generator=g,
                 is_cat=IS_CAT[None, None, :], clip=CLIP, **kw)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    # The chunked path really ran: a pass holds at most 7 rows, so the 2 samples go one at a time (16 key
    # rows), each with its key rows (once in all if cached) and ceil(24 / 7) query chunks. The last call
    # (t = 0) is made only if a categorical cell is still masked there.
    cached = complete_rows >= max_rows and kw["method"] != "repaint"
    per_call = 2 * math.ceil((N - max_rows) / chunk) + (0 if cached else 2)
    n_calls = GaussianDiffusion().respaced(kw["n_steps"]).n_chain
    if kw.get("jump_n_sample", 1) > 1:
        n_calls = count_calls(repaint_schedule(n_calls, kw["jump_length"], kw["jump_n_sample"]))[0]
    assert counter.n - cached in {per_call * n_calls, per_call * (n_calls - 1)}


@torch.no_grad()
@pytest.mark.parametrize("complete_rows", [30, 0], ids=["cached", "uncached"])
def test_draws_attend_to_their_key_rows_after_the_shared_call(complete_rows):
    """share_first_call with draw_key_rows: the first call (one sample) sees every key row, the later ones the
    draws' subset only; the same as one joint forward per call with those key masks."""
    model = make_model()
    N = 40
    x, known = make_table(5, N=N, complete_rows=complete_rows)
    keys = choose_key_rows(known, 16, torch.Generator().manual_seed(0))
    draw_keys = keys[choose_key_rows(known[keys], 6, torch.Generator().manual_seed(1))]
    kw = {"method": "conditional", "n_steps": 4, "n_samples": 3}
    out = _impute(model, x, known, seed=2, chunk_rows=7, key_rows=keys, share_first_call=True,
                  draw_key_rows=draw_keys, **kw)
    x_rep, k_rep = x[None].expand(3, -1, -1).contiguous(), known[None].expand(3, -1, -1)
    ref = sample(_joint_denoiser(model, draw_keys, N), GaussianDiffusion(), x_rep, k_rep, method="conditional",
                 n_steps=4, generator=torch.Generator().manual_seed(2), is_cat=IS_CAT[None, None, :], clip=CLIP,
                 share_first_call=True, first_denoiser=_joint_denoiser(model, keys, N))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    _check_invariants(out, x, known)


@torch.no_grad()
@pytest.mark.parametrize("method", ["ddim", "conditional"])
def test_context_cache_on_and_off_agree(method):
    model = make_model()
    N = 40
    x, known = make_table(4, N=N, complete_rows=20)
    key_rows = choose_key_rows(known, 16, torch.Generator().manual_seed(0))
    assert bool(known[key_rows].all()), "complete rows are preferred as key rows"
    outs, forwards = [], []
    for cache in (True, False):
        den = TableDenoiser(model, IS_CAT[None], N_CLASSES[None], key_rows, chunk_rows=9, cache_context=cache)
        counter = CountForwards(model)
        x_rep, k_rep = x[None].expand(3, -1, -1).contiguous(), known[None].expand(3, -1, -1)
        outs.append(sample(den, GaussianDiffusion(), x_rep, k_rep, method=method, n_steps=5, clip=CLIP,
                           generator=torch.Generator().manual_seed(5), is_cat=IS_CAT[None, None, :]))
        counter.handle.remove()
        forwards.append(counter.n)
        assert den.calls in (4, 5)  # the last step (t = 0) calls only if a categorical cell is still masked
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=0)
    assert forwards[0] < forwards[1], "the cache skips re-encoding the key rows"
    _check_invariants(outs[0], x, known)


@torch.no_grad()
@pytest.mark.parametrize("n_samples, chunk, complete_rows", [(1, 7, 0), (3, 7, 0), (3, 40, 0), (3, 7, 30), (5, 35, 0)])
def test_forward_passes_counts_the_passes_of_a_call(n_samples, chunk, complete_rows):
    model = make_model()
    N, K = 40, 16
    x, known = make_table(2, N=N, complete_rows=complete_rows)
    keys = choose_key_rows(known, K, torch.Generator().manual_seed(0))
    cached = bool(known[keys].all())
    den = TableDenoiser(model, IS_CAT[None], N_CLASSES[None], keys, chunk_rows=chunk, cache_context=cached)
    x_t = torch.nan_to_num(x)[None].expand(n_samples, -1, -1)
    for key_pass in ("once", "none") if cached else ("each", "each"):
        counter = CountForwards(model)
        den(x_t, torch.full((n_samples,), 500), known[None].expand(n_samples, -1, -1))
        counter.handle.remove()
        assert counter.n == forward_passes(n_samples, N, K, chunk, key_pass)


@pytest.mark.parametrize("share, draw_rows", [(False, None), (True, None), (True, 8)])
@pytest.mark.parametrize("complete_rows", [0, 30])
@pytest.mark.parametrize("extra", ["none", "local", "folds"])
@pytest.mark.parametrize("setting", ["ddim-1", "conditional-4", "conditional-4-jumps", "repaint-4-jumps"])
def test_progress_bar_ends_full(setting, complete_rows, share, draw_rows, extra, monkeypatch):
    """The bar's total is the forward passes ``impute`` makes (numeric table: the last step makes none), those
    of the draws' spread calibration, the local contexts and the views' cross-validation included, and the bar
    ticks once per pass."""
    import numpy as np
    import tqdm.auto

    from icl_diffusion.checkpoint import Pretrained
    from icl_diffusion.inference import impute

    bars = []

    class Bar:
        def __init__(self, total, **_):
            self.total, self.n = total, 0
            bars.append(self)

        def update(self, n):
            self.n += n
            return True  # as tqdm's does when it redraws: the hook must not pass it on as the output

        def close(self):
            pass

        def refresh(self):
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    x, known = make_table(3, N=40, complete_rows=complete_rows)
    n_samples = 1 if setting == "ddim-1" else 3
    model = make_model()
    counter = CountForwards(model)
    run = lambda progress: impute(
        Pretrained(model, GaussianDiffusion()), torch.nan_to_num(x).numpy(), known.numpy(), np.zeros(5, bool),
        np.zeros(5, np.int64), n_samples=n_samples, max_context_rows=16, chunk_rows=20, progress=progress,
        share_first_call=share, draw_context_rows=draw_rows, **SETTINGS[setting],
        **{"none": {}, "local": LOCAL, "folds": {"ensemble_folds": 3}}[extra])
    with_bar = run(True)
    assert len(bars) == 1 and bars[0].n == bars[0].total == counter.n > 0
    np.testing.assert_array_equal(with_bar, run(False))  # the bar changes nothing


def test_choose_key_rows():
    known = torch.rand(50, 4, generator=torch.Generator().manual_seed(6)) < 0.8
    assert torch.equal(choose_key_rows(known, 64, torch.Generator()), torch.arange(50))
    assert torch.equal(choose_key_rows(known, 50, torch.Generator()), torch.arange(50))
    n_complete = int(known.all(1).sum())
    for m in (5, n_complete, n_complete + 7):
        kr = choose_key_rows(known, m, torch.Generator().manual_seed(1))
        assert len(kr) == m and torch.equal(kr, kr.sort().values) and len(kr.unique()) == m
        assert int(known[kr].all(1).sum()) == min(m, n_complete), "complete rows first"
        assert torch.equal(kr, choose_key_rows(known, m, torch.Generator().manual_seed(1)))
    a = choose_key_rows(known, 5, torch.Generator().manual_seed(1))
    b = choose_key_rows(known, 5, torch.Generator().manual_seed(2))
    assert not torch.equal(a, b)


def test_context_rows_widen_a_narrow_table_s_context():
    from icl_diffusion.sampling import context_rows

    assert context_rows(512, 10240, 20) == 512  # 512 rows of a 20-column table: the cells' budget
    assert context_rows(512, 10240, 100) == 512  # a wide table keeps max_context_rows
    assert context_rows(512, 10240, 16) == 640
    assert context_rows(512, 10240, 5) == 1024  # at most twice max_context_rows
    assert context_rows(512, 0, 5) == 512  # off
    assert context_rows(16, 10240, 5) == 32


def test_a_narrow_table_is_imputed_with_the_wider_context(tiny_checkpoint):
    """Through the estimator: a 4-column table of 700 rows has every row as a key row by default (its imputation is
    that of max_context_rows=700 without the widening) and 512 with ``context_cells=0``."""
    import numpy as np

    from icl_diffusion import DiffusionImputer

    rng = np.random.default_rng(0)
    x = rng.standard_normal((700, 4))
    x[rng.random(x.shape) < 0.2] = np.nan
    run = lambda **kw: DiffusionImputer(checkpoint=str(tiny_checkpoint), random_state=0, **kw).fit_transform(x)
    default = run()
    np.testing.assert_array_equal(default, run(max_context_rows=700, context_cells=0))
    assert not np.array_equal(default, run(context_cells=0))
    np.testing.assert_array_equal(run(context_cells=0), run(max_context_rows=512, context_cells=0))


def test_tuned_sampler_settings_travel_in_the_checkpoint_and_fill_unset_parameters(tmp_path):
    import numpy as np

    from icl_diffusion import DiffusionImputer, load_checkpoint, save_checkpoint
    from icl_diffusion.sampling import SamplerConfig

    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig(d_model=32, n_blocks=1, n_heads=2))
    tuned = SamplerConfig(draw_steps=3, variance_mix=0.0, max_context_rows=8)
    path = save_checkpoint(tmp_path / "tuned.safetensors", model, GaussianDiffusion(), sampler=tuned)
    assert load_checkpoint(path).sampler == tuned
    default = save_checkpoint(tmp_path / "default.safetensors", model, GaussianDiffusion())
    assert load_checkpoint(default).sampler == SamplerConfig()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    x[rng.random(x.shape) < 0.3] = np.nan
    draws = DiffusionImputer(checkpoint=str(path), random_state=0).fit(x).sample(x, 2)
    explicit = DiffusionImputer(checkpoint=str(default), random_state=0, method="conditional", n_steps=3,
                                variance_mix=0.0, max_context_rows=8).fit(x).sample(x, 2)
    for a, b in zip(draws, explicit):
        np.testing.assert_array_equal(a, b)  # the checkpoint's settings = the same settings given explicitly
    other = DiffusionImputer(checkpoint=str(default), random_state=0).fit(x).sample(x, 2)
    assert not np.array_equal(draws[0], other[0])


def test_every_tuned_setting_is_an_engine_parameter_defaulting_to_the_checkpoint():
    """``impute`` resolves its unset settings from ``SETTINGS`` (SamplerConfig's fields): each must be one of its
    keyword arguments, left None by default, or a setting would silently never be read from the checkpoint."""
    import inspect

    from icl_diffusion.inference import SETTINGS, impute

    params = inspect.signature(impute).parameters
    assert SETTINGS and all(params[name].default is None for name in SETTINGS)


def test_the_target_is_blended_with_its_trees_by_the_given_weight(tmp_path):
    """``impute(target=j, target_weight=w)`` (the predictors' path): the target's unknown cells are (1 - w) the
    network's + w the trees' (``target_trees``), values or class probabilities; known cells and other columns as
    without it; a table imputed as a whole, or a column out of range, is a one-line error."""
    import numpy as np

    from icl_diffusion import load_checkpoint, save_checkpoint
    from icl_diffusion.inference import impute, target_trees

    path = save_checkpoint(tmp_path / "m.safetensors", make_model(), GaussianDiffusion())
    pre = load_checkpoint(path)
    x, known = make_table(0, complete_rows=30)
    x, known = torch.nan_to_num(x).numpy(), known.numpy()
    keys = np.arange(30)
    cat, ncl = IS_CAT.numpy(), N_CLASSES.numpy()
    for target in (2, 4):  # a numeric target, a categorical one
        (alone, logits), (half, half_logits) = (
            impute(pre, x, known, cat, ncl, key_rows=keys, seed=0, return_logits=True, target=target, target_weight=w,
                   extrapolate=False) for w in (0.0, 0.5))
        trees = target_trees(pre, x, known, cat, ncl, keys, target, logits.shape[-1], 0).numpy()
        unknown = ~known[:, target]
        assert unknown.any()
        others = np.arange(x.shape[1]) != target
        np.testing.assert_array_equal(half[0][:, others], alone[0][:, others])
        if cat[target]:
            net = np.exp(logits[:, target] - logits[:, target].max(-1, keepdims=True))
            net /= net.sum(-1, keepdims=True)
            np.testing.assert_allclose(np.exp(half_logits[unknown, target]), (0.5 * net + 0.5 * trees)[unknown],
                                       atol=1e-5)
        else:
            np.testing.assert_allclose(half[0][unknown, target], 0.5 * alone[0][unknown, target] + 0.5 * trees[unknown],
                                       atol=1e-5)
        np.testing.assert_array_equal(half[0][~unknown, target], x[~unknown, target])
    with pytest.raises(ValueError, match="^target must be a column index"):
        impute(pre, x, known, cat, ncl, target=2, target_weight=0.5)
    with pytest.raises(ValueError, match="^target must be a column index"):
        impute(pre, x, known, cat, ncl, key_rows=keys, target=5, target_weight=0.5)


def test_a_numeric_target_beyond_the_fitted_rows_is_carried_on_from_its_edge_along_the_linear_fit(tmp_path):
    """``impute(target=j, extrapolate=True)`` (the regressor's default): a query row whose known numeric cells lie
    beyond the key rows' range gets the target imputed at its edge (those cells clipped to the range) plus the
    closed-form linear fit's gain from the edge to the row (``linear_extrapolation``); rows inside the range come
    out bit for bit as without it, the observed cells as given (not clipped), draws shifted alike; a categorical
    target is untouched."""
    import numpy as np

    from icl_diffusion import load_checkpoint, save_checkpoint
    from icl_diffusion.inference import impute, key_range_edges, linear_extrapolation

    pre = load_checkpoint(save_checkpoint(tmp_path / "m.safetensors", make_model(), GaussianDiffusion()))
    x, known = make_table(0, complete_rows=30)
    x, known = torch.nan_to_num(x).numpy(), known.numpy()
    keys, cat, ncl = np.arange(30), IS_CAT.numpy(), N_CLASSES.numpy()
    x[:30, 3] = np.clip(x[:30, 3], -1.5, 1.5)
    x[35, 3], known[35, 3], known[35, 2] = 4.0, True, False  # row 35: column 3 beyond the key rows' range
    inside = (key_range_edges(x, known, cat, keys) == x).all(1)
    assert inside[:30].all() and not inside[35] and inside.sum() > 31
    edges = key_range_edges(x, known, cat, keys)
    assert edges[35, 3] == 1.5
    gain = linear_extrapolation(pre, x, edges, known, cat, ncl, keys, 2).numpy()
    assert np.allclose(gain[inside], 0) and abs(gain[35]) > 1e-3
    for kw in ({}, {"method": "conditional", "n_steps": 2, "n_samples": 3}):
        on, off = (impute(pre, x, known, cat, ncl, key_rows=keys, seed=0, target=2, extrapolate=e, **kw)
                   for e in (True, False))
        at_edges = impute(pre, edges, known, cat, ncl, key_rows=keys, seed=0, target=2, extrapolate=False, **kw)
        np.testing.assert_array_equal(on[:, inside], off[:, inside])
        np.testing.assert_allclose(on[:, 35, 2], at_edges[:, 35, 2] + gain[35], rtol=1e-6)
        for out in on:
            np.testing.assert_array_equal(out[known], x[known])
    categorical = [impute(pre, x, known, cat, ncl, key_rows=keys, seed=0, target=4, extrapolate=e) for e in (1, 0)]
    np.testing.assert_array_equal(*categorical)
    point = impute(pre, x, known, cat, ncl, key_rows=keys, seed=0, target=2, extrapolate=True)
    with_nan = impute(pre, np.where(known, x, np.nan), known, cat, ncl, key_rows=keys, seed=0, target=2,
                      extrapolate=True)  # unknown cells given as NaN: the edges found once, as with zeros
    np.testing.assert_array_equal(with_nan[:, ~known], point[:, ~known])


def test_given_blend_weights_are_taken_and_the_spread_calibration_reuses_the_table_s(tmp_path, monkeypatch):
    """``impute(input_blend=...)``: the blend takes the given weights instead of choosing them (the network's alone
    in every column: the unblended estimate), and a draws call chooses its table's weights once: its spread
    calibration, a nested call on the key rows, is handed them (``input_weights`` runs once, not twice)."""
    import numpy as np

    from icl_diffusion import inference, load_checkpoint, save_checkpoint

    path = save_checkpoint(tmp_path / "m.safetensors", make_model(), GaussianDiffusion())
    pre = load_checkpoint(path)
    x, known = make_table(0, N=60, complete_rows=20)
    x, known = torch.nan_to_num(x).numpy(), known.numpy()
    cat, ncl = IS_CAT.numpy(), N_CLASSES.numpy()
    k = 1 + len(pre.model.closed_form_inputs) + len(inference.ENGINE_INPUTS)
    network_alone = torch.zeros(x.shape[1], k, dtype=torch.float64)
    network_alone[:, 0] = 1
    given = inference.InputBlend(network_alone, torch.zeros(x.shape[1], dtype=torch.bool))
    unblended = inference.impute(pre, x, known, cat, ncl, seed=0, blend_inputs=False)
    blended = inference.impute(pre, x, known, cat, ncl, seed=0, blend_inputs=True)
    taken = inference.impute(pre, x, known, cat, ncl, seed=0, blend_inputs=True, input_blend=given)
    np.testing.assert_allclose(taken, unblended, atol=1e-6)
    assert not np.allclose(blended, unblended, atol=1e-6)  # the table's own weights blend: the given ones were taken
    calls = []
    chosen = inference.input_weights
    monkeypatch.setattr(inference, "input_weights", lambda *a, **kw: calls.append(1) or chosen(*a, **kw))
    draws = inference.impute(pre, x, known, cat, ncl, seed=0, n_samples=3, method="conditional", n_steps=2,
                             blend_inputs=True, center_draws=True, calibrate_spread=True, share_first_call=True)
    assert len(calls) == 1 and draws.shape == (3, *x.shape)


def _far_group_table():
    """400 rows, 3 columns; a group of 6 rows (column b = 10) holds a = 100, far beyond 8 of the observed values'
    stds (two of the group's a known: 13 stds); a is hidden in the other four."""
    rng = np.random.default_rng(0)
    n = 400
    group = np.arange(n) < 6
    b = np.where(group, 10.0, rng.normal(size=n))
    c = rng.normal(size=n) + 0.5 * b
    a = np.where(group, 100.0 + rng.normal(size=n), rng.normal(size=n) + 0.3 * c)
    missing = rng.random((n, 3)) < 0.1
    missing[:6] = False
    missing[2:6, 0] = True
    return np.where(missing, np.nan, np.c_[a, b, c])


def test_imputations_reach_beyond_the_networks_range_where_the_observed_values_do(monkeypatch):
    """The network reads numeric cells within +-CLIP stds (as in training); the table keeps its values beyond, so
    the trees learn the far group's value and the imputations may reach it (a clamp of the table at CLIP capped them
    at the observed mean + 8 stds: 62.5 here, where the group's a is 100), never beyond the observed values' reach."""
    from icl_diffusion import DiffusionImputer

    x = _far_group_table()
    seen = []
    forward = Denoiser.forward

    def spy(self, x_t, *args, **kwargs):
        seen.append(float(x_t[..., :3].abs().max()))  # the three numeric columns
        return forward(self, x_t, *args, **kwargs)

    monkeypatch.setattr(Denoiser, "forward", spy)
    out = DiffusionImputer(random_state=0).fit_transform(x)
    observed = x[~np.isnan(x[:, 0]), 0]
    assert seen and max(seen) <= CLIP
    assert out[2:6, 0].max() > observed.mean() + 8 * observed.std()  # beyond the old cap
    assert out[:, 0].max() <= observed.max()  # within the observed values' reach
    np.testing.assert_array_equal(out[~np.isnan(x)], x[~np.isnan(x)])  # observed cells untouched
