"""The set-equivariant Denoiser: permutation equivariance, padding, context caching, categorical logits."""

from __future__ import annotations

import pytest
import torch

from icl_diffusion.diffusion import MASK
from icl_diffusion.model import Denoiser, DenoiserConfig

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest: tiny tensors, shared 2-core machine

ATOL = 1e-5
ROW_ATTENTION = ["full", "isab"]


def make_model(row_attention: str, seed: int = 0) -> Denoiser:
    torch.manual_seed(seed)
    cfg = DenoiserConfig(d_model=32, n_blocks=2, n_heads=4, mlp_ratio=2, row_attention=row_attention, n_inducing=6, gaussian_em_iters=3)
    return Denoiser(cfg).eval()


def make_inputs(seed: int, B: int = 2, N: int = 9, Fe: int = 5):
    """x (B, N, F) with categorical columns 1 and 3 holding codes or MASK; known, is_cat, n_classes, t."""
    g = torch.Generator().manual_seed(seed)
    is_cat = torch.zeros(B, Fe, dtype=torch.bool)
    is_cat[:, 1] = True
    is_cat[:, 3] = True
    n_classes = torch.zeros(B, Fe, dtype=torch.long)
    n_classes[:, 1], n_classes[:, 3] = 3, 5
    known = torch.rand(B, N, Fe, generator=g) < 0.5
    codes = (torch.rand(B, N, Fe, generator=g) * n_classes[:, None, :].clamp(min=1)).floor()
    codes = torch.where(known, codes, torch.full_like(codes, MASK))  # unknown categorical cells absorbed
    x = torch.where(is_cat[:, None, :], codes, torch.randn(B, N, Fe, generator=g))
    t = torch.tensor([10, 900])[:B]
    return x, t, known, is_cat, n_classes


def _close(a, b, atol=ATOL):
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


def _tensors(obj) -> list[torch.Tensor]:
    """Every tensor inside a (nested) context object, in a fixed order, whatever its structure."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for k in sorted(obj) for t in _tensors(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    return []


@torch.no_grad()
@pytest.mark.parametrize("row_attention", ROW_ATTENTION)
@pytest.mark.parametrize("with_key_mask", [False, True])
def test_row_permutation_equivariance(row_attention, with_key_mask):
    model = make_model(row_attention)
    x, t, known, is_cat, n_classes = make_inputs(0)
    key_mask = None
    if with_key_mask:
        key_mask = torch.rand(x.shape[:2], generator=torch.Generator().manual_seed(1)) < 0.6
        key_mask[:, 0] = True  # at least one key row per table
    num, logits = model(x, t, known, is_cat, n_classes, key_mask=key_mask)
    assert bool(torch.isfinite(num).all()) and bool(torch.isfinite(logits).all())
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(2))
    num_p, logits_p = model(x[:, perm], t, known[:, perm], is_cat, n_classes,
                            key_mask=None if key_mask is None else key_mask[:, perm])
    _close(num_p, num[:, perm])
    _close(logits_p, logits[:, perm])


@torch.no_grad()
@pytest.mark.parametrize("row_attention", ROW_ATTENTION)
@pytest.mark.parametrize("with_masks", [False, True])
def test_feature_permutation_equivariance(row_attention, with_masks):
    model = make_model(row_attention)
    x, t, known, is_cat, n_classes = make_inputs(3)
    key_mask = col_mask = None
    if with_masks:
        key_mask = torch.ones(x.shape[:2], dtype=torch.bool)
        key_mask[:, -3:] = False
        col_mask = torch.ones(x.shape[0], x.shape[2], dtype=torch.bool)
        col_mask[:, 2] = False
    # The per-column identity vectors travel with their columns; (F, E) and (B, F, E) forms both.
    col_embed = model.column_embeddings(x.shape[2])
    num, logits = model(x, t, known, is_cat, n_classes, key_mask=key_mask, col_mask=col_mask)
    num_e, _ = model(x, t, known, is_cat, n_classes, key_mask=key_mask, col_mask=col_mask,
                     col_embed=col_embed)
    _close(num_e, num)  # None means the seeded default
    perm = torch.randperm(x.shape[2], generator=torch.Generator().manual_seed(4))
    level_embed = model.level_embeddings(x.shape[2], int(n_classes.max()))  # level identities travel too
    for emb in (col_embed[perm], col_embed[perm].expand(x.shape[0], -1, -1)):
        num_p, logits_p = model(x[:, :, perm], t, known[:, :, perm], is_cat[:, perm], n_classes[:, perm],
                                key_mask=key_mask, col_mask=None if col_mask is None else col_mask[:, perm],
                                col_embed=emb, level_embed=level_embed[perm])
        _close(num_p, num[:, :, perm])
        _close(logits_p, logits[:, :, perm])


@torch.no_grad()
@pytest.mark.parametrize("row_attention", ROW_ATTENTION)
def test_batch_elements_are_independent(row_attention):
    model = make_model(row_attention)
    x, t, known, is_cat, n_classes = make_inputs(5)
    num, logits = model(x, t, known, is_cat, n_classes)
    for b in range(x.shape[0]):
        s = slice(b, b + 1)
        num_b, logits_b = model(x[s], t[s], known[s], is_cat[s], n_classes[s])
        _close(num_b, num[s])
        _close(logits_b, logits[s])


@torch.no_grad()
@pytest.mark.parametrize("row_attention", ROW_ATTENTION)
def test_padding_does_not_leak(row_attention):
    model = make_model(row_attention)
    x, t, known, is_cat, n_classes = make_inputs(6, N=10, Fe=6)
    B, N, Fe = x.shape
    real_rows, real_cols = 7, 4  # rows 7.. and features 4.. are padding (features 4, 5 numeric)
    key_mask = torch.zeros(B, N, dtype=torch.bool)
    key_mask[:, :real_rows] = True
    col_mask = torch.zeros(B, Fe, dtype=torch.bool)
    col_mask[:, :real_cols] = True
    num, logits = model(x, t, known, is_cat, n_classes, key_mask=key_mask, col_mask=col_mask)
    g = torch.Generator().manual_seed(7)
    x2, known2 = x.clone(), known.clone()
    pad = torch.zeros_like(known)
    pad[:, real_rows:] = True
    pad[:, :, real_cols:] = True
    pad &= ~is_cat[:, None, :]  # keep categorical padding cells valid codes; numeric ones change freely
    x2[pad] = 100 * torch.randn(int(pad.sum()), generator=g)
    known2[:, real_rows:] = ~known2[:, real_rows:]
    known2[:, :, real_cols:] = ~known2[:, :, real_cols:]
    num2, logits2 = model(x2, t, known2, is_cat, n_classes, key_mask=key_mask, col_mask=col_mask)
    assert not torch.allclose(num2[:, real_rows:], num[:, real_rows:]), "the change must reach padded cells"
    _close(num2[:, :real_rows, :real_cols], num[:, :real_rows, :real_cols])
    _close(logits2[:, :real_rows, :real_cols], logits[:, :real_rows, :real_cols])
    x2[pad] = float("nan")  # not even NaN padding reaches a real cell (0 * NaN would)
    num3, logits3 = model(x2, t, known2, is_cat, n_classes, key_mask=key_mask, col_mask=col_mask)
    _close(num3[:, :real_rows, :real_cols], num[:, :real_rows, :real_cols])
    _close(logits3[:, :real_rows, :real_cols], logits[:, :real_rows, :real_cols])


@torch.no_grad()
@pytest.mark.parametrize("row_attention", ROW_ATTENTION)
def test_context_cache_equals_joint_forward_with_key_mask(row_attention):
    model = make_model(row_attention)
    x, t, known, is_cat, n_classes = make_inputs(8, N=12)
    K = 7  # rows 0..6 are key rows, 7..11 query rows
    key_mask = torch.zeros(x.shape[:2], dtype=torch.bool)
    key_mask[:, :K] = True
    num, logits = model(x, t, known, is_cat, n_classes, key_mask=key_mask)
    k_num, k_logits, ctx = model(x[:, :K], t, known[:, :K], is_cat, n_classes, return_context=True)
    _close(k_num, num[:, :K])
    _close(k_logits, logits[:, :K])
    # Query rows in two chunks against the cached keys.
    for rows in (slice(K, K + 2), slice(K + 2, None)):
        q_num, q_logits = model(x[:, rows], t, known[:, rows], is_cat, n_classes, context=ctx)
        _close(q_num, num[:, rows])
        _close(q_logits, logits[:, rows])


@torch.no_grad()
@pytest.mark.parametrize("row_attention", ROW_ATTENTION)
def test_context_of_one_table_shared_by_a_batch_of_samples(row_attention):
    # The inference path encodes the key rows once (batch 1) and reuses them for S samples of the query rows.
    model = make_model(row_attention)
    x, _, known, is_cat, n_classes = make_inputs(9, B=1, N=10)
    K, S = 6, 3
    known[:, :K] = True  # fully known key rows
    t = torch.tensor([500])
    _, _, ctx = model(x[:, :K], t, known[:, :K], is_cat, n_classes, return_context=True)
    g = torch.Generator().manual_seed(10)
    xq = x[:, K:].repeat(S, 1, 1)
    xq = torch.where(is_cat[:, None, :] | known[:, K:], xq, torch.randn(xq.shape, generator=g))
    q_num, q_logits = model(xq, t.expand(S), known[:, K:].expand(S, -1, -1), is_cat.expand(S, -1),
                            n_classes.expand(S, -1), context=ctx)
    key_mask = torch.zeros(1, x.shape[1], dtype=torch.bool)
    key_mask[:, :K] = True
    for s in range(S):
        joint = torch.cat([x[:, :K], xq[s : s + 1]], 1)
        num, logits = model(joint, t, known, is_cat, n_classes, key_mask=key_mask)
        _close(q_num[s : s + 1], num[:, K:])
        _close(q_logits[s : s + 1], logits[:, K:])


@torch.no_grad()
@pytest.mark.parametrize("row_attention", ROW_ATTENTION)
def test_fully_known_key_rows_do_not_depend_on_t(row_attention):
    # What makes context caching across denoising steps valid: time conditioning reaches unknown cells only.
    model = make_model(row_attention)
    x, _, known, is_cat, n_classes = make_inputs(11, B=1)
    known[:] = True
    outs = [model(x, torch.tensor([t]), known, is_cat, n_classes, return_context=True) for t in (0, 999)]
    _close(outs[0][0], outs[1][0])
    ctx0, ctx1 = _tensors(outs[0][2]), _tensors(outs[1][2])
    assert len(ctx0) == len(ctx1) > 0
    for a, b in zip(ctx0, ctx1):
        _close(a.float(), b.float())
    # ... while unknown cells do see t.
    num = [model(x, torch.tensor([t]), ~known, is_cat, n_classes)[0] for t in (0, 999)]
    assert not torch.allclose(num[0], num[1])


@torch.no_grad()
def test_categorical_logits_beyond_n_classes_are_minus_infinity():
    model = make_model("full")
    x, t, known, is_cat, n_classes = make_inputs(12)
    _, logits = model(x, t, known, is_cat, n_classes)
    C = int(n_classes.max())  # as many logits as the table's largest level count
    assert logits.shape == x.shape + (C,)
    valid = torch.arange(C) < n_classes.clamp(min=1)[:, None, :, None]  # (B, 1, F, C)
    valid = valid.expand_as(logits)
    assert bool((logits[~valid] <= -1e3).all())
    assert bool((logits[valid].abs() < 1e3).all())
    probs = torch.softmax(logits, -1)
    assert bool((probs[~valid] == 0).all()), "invalid classes get exactly zero probability"
    torch.testing.assert_close(probs.sum(-1), torch.ones(x.shape))
    assert bool((logits.argmax(-1) < n_classes.clamp(min=1)[:, None, :]).all())


def test_config_round_trip_and_parameter_count():
    model = make_model("isab")
    cfg = DenoiserConfig(**model.cfg.to_dict())
    assert cfg == model.cfg
    assert model.num_parameters() == sum(p.numel() for p in model.parameters()) > 0
    # Gradients flow to every parameter in a full forward (no dead branch).
    x, t, known, is_cat, n_classes = make_inputs(13)
    num, logits = model(x, t, known, is_cat, n_classes)
    (num.sum() + logits.clamp(min=-100).sum()).backward()
    assert all(p.grad is not None for p in model.parameters())


@torch.no_grad()
def test_relabelling_levels_permutes_logits():
    """Codes are unordered labels: relabelling a column's levels (and moving its level identity vectors with
    them) permutes that column's logits the same way and changes nothing else."""
    model = make_model("full")
    x, t, known, is_cat, n_classes = make_inputs(21)
    level_embed = model.level_embeddings(x.shape[2], 5)
    num, logits = model(x, t, known, is_cat, n_classes, level_embed=level_embed)
    perm = torch.tensor([3, 0, 4, 1, 2])  # column 3 (5 levels): level c becomes perm[c]
    x_r = x.clone()
    codes = x[:, :, 3]
    x_r[:, :, 3] = torch.where(codes == MASK, codes, perm[codes.clamp(min=0).long()].float())
    emb_r = level_embed.clone()
    emb_r[3, perm] = level_embed[3]
    num_r, logits_r = model(x_r, t, known, is_cat, n_classes, level_embed=emb_r)
    _close(num_r, num)
    _close(logits_r[:, :, 3][..., perm], logits[:, :, 3])
    _close(logits_r[:, :, 1], logits[:, :, 1])


@torch.no_grad()
def test_hundred_levels_without_retraining():
    model = make_model("full")
    x, t, known, is_cat, n_classes = make_inputs(22)
    n_classes[:, 3] = 100
    x[:, :, 3] = torch.where(known[:, :, 3], torch.randint(0, 100, x[:, :, 3].shape).float(), MASK)
    _, logits = model(x, t, known, is_cat, n_classes)
    assert logits.shape[-1] == 100 and bool(torch.isfinite(logits).all())
    assert bool((logits[:, :, 1, 3:] == -1e4).all())  # column 1 has 3 levels


def _scrambled(original, seed: int):
    """``cell_estimates`` with other closed-form estimates at the unknown cells, the same elsewhere."""

    def scrambled(x, seen, *args, **kwargs):
        gauss, probs, fit = original(x, seen, *args, **kwargs)
        g = torch.Generator().manual_seed(seed)
        other = torch.softmax(5 * torch.randn(probs.shape, generator=g), -1)
        return (torch.where(seen, gauss, 3 * torch.randn(gauss.shape, generator=g)),
                torch.where(seen[..., None], probs, other), fit)

    return scrambled


@torch.no_grad()
def test_withheld_closed_form_reaches_no_unknown_cell(monkeypatch):
    """Training's ``p_withhold_closed_form``: a withheld table's output does not depend on the closed-form
    estimates at its unknown cells (numeric estimate and level probabilities), while the other tables' does."""
    import icl_diffusion.model as model_module

    model = make_model("full")
    x, t, known, is_cat, n_classes = make_inputs(13)
    withhold = torch.tensor([True, False])
    exact = model(x, t, known, is_cat, n_classes, withhold_closed_form=withhold)
    plain = model(x, t, known, is_cat, n_classes)
    monkeypatch.setattr(model_module, "cell_estimates", _scrambled(model_module.cell_estimates, 0))
    moved = model(x, t, known, is_cat, n_classes, withhold_closed_form=withhold)
    for a, b, c in zip(exact, moved, plain):
        _close(a[0], b[0])  # withheld: the scrambled estimates never reach it
        _close(a[1], c[1])  # not withheld: as without the flag
        assert (a[1] - b[1]).abs().max() > 1e-3  # ... and it reads them


def test_training_loss_withholds_the_closed_form_from_its_share_of_tables(monkeypatch):
    """``LossConfig.p_withhold_closed_form = 1``: no table's loss depends on the closed-form estimates at its
    unknown cells; at 0 every table's does."""
    import icl_diffusion.model as model_module
    from icl_diffusion.diffusion import GaussianDiffusion
    from icl_diffusion.training import LossConfig, training_loss
    from priors import PriorConfig, sample_batch

    batch = sample_batch(PriorConfig(n_rows=[16, 32], n_features=[3, 6], p_has_categorical=1.0),
                         torch.Generator().manual_seed(0))
    model = make_model("full")
    scrambled = _scrambled(model_module.cell_estimates, 1)

    def losses(p: float) -> list[torch.Tensor]:
        cfg = LossConfig(p_withhold_closed_form=p, p_uncond=0.0)
        out = [training_loss(model, GaussianDiffusion(), batch, cfg, torch.Generator().manual_seed(2))[0]]
        with monkeypatch.context() as m:
            m.setattr(model_module, "cell_estimates", scrambled)
            out.append(training_loss(model, GaussianDiffusion(), batch, cfg, torch.Generator().manual_seed(2))[0])
        return out

    withheld, read = losses(1.0), losses(0.0)
    _close(withheld[0], withheld[1])
    assert (read[0] - read[1]).abs() > 1e-3


def test_t_max_uncond_false_keeps_the_unconditional_tables_off_the_last_step():
    """``LossConfig.t_max_uncond``: with every table at t = T-1 (p_t_max 1), an unconditional table stays there
    (True, every recipe until session 34) or draws its step uniformly (False); conditional tables are at T-1
    either way."""
    from icl_diffusion.diffusion import GaussianDiffusion
    from icl_diffusion.training import LossConfig, training_loss
    from priors import PriorConfig, sample_batch

    batch = sample_batch(PriorConfig(n_rows=[16, 32], n_features=[3, 6]), torch.Generator().manual_seed(0))
    model = make_model("full")
    diffusion = GaussianDiffusion()
    last = diffusion.num_steps - 1

    def steps(p_uncond: float, t_max_uncond: bool) -> torch.Tensor:
        seen = []
        hook = model.register_forward_pre_hook(lambda _m, args: seen.append(args[1].clone()))
        cfg = LossConfig(p_uncond=p_uncond, p_t_max=1.0, t_max_uncond=t_max_uncond)
        training_loss(model, diffusion, batch, cfg, torch.Generator().manual_seed(3))
        hook.remove()
        return seen[0]

    assert (steps(1.0, True) == last).all()
    assert (steps(0.0, False) == last).all()
    uniform = steps(1.0, False)
    assert (uniform < last).all() and uniform.float().std() > 100


def test_distillation_is_zero_against_itself_and_pulls_the_levels_toward_the_teacher():
    """``LossConfig.distill_weight``: the KL divergence from the teacher's level probabilities on the conditional
    tables' categorical target cells. Against a copy of the network it is 0 (the loss is the undistilled one); against
    another network it is positive, adds weight x it to the loss, and its gradient reaches the student's categorical
    head only through the student (the teacher gets none); on unconditional tables alone it is 0."""
    import copy

    from icl_diffusion.diffusion import GaussianDiffusion
    from icl_diffusion.training import LossConfig, training_loss
    from priors import PriorConfig, sample_batch

    batch = sample_batch(PriorConfig(n_rows=[16, 32], n_features=[3, 6], p_has_categorical=1.0),
                         torch.Generator().manual_seed(0))
    student, other = make_model("full"), make_model("full")
    torch.manual_seed(7)
    for p in other.parameters():  # a different network
        p.data.add_(0.5 * torch.randn_like(p))
    other.requires_grad_(False)
    diffusion = GaussianDiffusion()

    def run(teacher, weight=2.0, p_uncond=0.0):
        cfg = LossConfig(distill_weight=weight, p_uncond=p_uncond)
        return training_loss(student, diffusion, batch, cfg, torch.Generator().manual_seed(2), teacher)

    plain, _ = run(None, 0.0)
    same, same_stats = run(copy.deepcopy(student))
    assert same_stats["distill"].abs() < 1e-5
    _close(same, plain, atol=1e-4)
    pulled, stats = run(other)
    assert stats["distill"] > 1e-3
    _close(pulled, plain + 2.0 * stats["distill"], atol=1e-4)
    pulled.backward()
    assert student.level_q.weight.grad.abs().sum() > 0 and other.level_q.weight.grad is None
    assert run(other, p_uncond=1.0)[1]["distill"] == 0
