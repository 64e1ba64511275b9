"""Fine-tuning on the user's tables (icl_diffusion.finetune, DiffusionImputer.fine_tune, the CLI)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from icl_diffusion import DiffusionImputer, fine_tune, load_checkpoint, load_pretrained
from icl_diffusion.cli import main
from icl_diffusion.diffusion import GaussianDiffusion
from icl_diffusion.finetune import FineTuneConfig, FineTuneLitModule, UserTableDataset, encode_tables
from icl_diffusion.model import Denoiser, DenoiserConfig
from icl_diffusion.training import training_loss
from priors import PriorConfig

pytestmark = pytest.mark.usefixtures("single_thread")


def product_domain(seed: int, n: int = 400) -> pd.DataFrame:
    """Tables of one "domain": c is exactly a * b (a relation the prior rarely draws), d follows a."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-2, 2, n), rng.uniform(-2, 2, n)
    return pd.DataFrame({"a": a, "b": b, "c": a * b, "d": a + rng.normal(scale=0.3, size=n)})


def heldout_nrmse(checkpoint, blend_inputs=None) -> float:
    """NRMSE of DiffusionImputer on 30% hidden cells of c in a new table of the domain (``blend_inputs``: as the
    estimator's; None: the checkpoint's setting)."""
    df = product_domain(99)
    hide = np.random.default_rng(5).random(len(df)) < 0.3
    holey = df.copy()
    holey.loc[hide, "c"] = np.nan
    filled = DiffusionImputer(checkpoint=checkpoint, random_state=0, blend_inputs=blend_inputs).fit_transform(holey)
    return float(np.sqrt(((filled["c"] - df["c"])[hide] ** 2).mean()) / df["c"].std())


def test_masks_fall_only_on_observed_cells_and_missing_cells_are_never_targets():
    df = product_domain(0).mask(np.random.default_rng(1).random((400, 4)) < 0.3)
    enc = encode_tables(df, max_classes=100)
    data = UserTableDataset(enc, FineTuneConfig(p_prior=0.0), PriorConfig())
    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig(d_model=32, n_blocks=1, n_heads=2))
    for index in range(6):
        batch = data.batch(index)
        assert not bool((batch["known"] & ~batch["observed"]).any())
        assert bool(batch["observed"].any()) and not bool(batch["observed"].all())
        # Whatever a missing cell holds, the loss does not see it.
        changed = {**batch, "x": torch.where(batch["observed"], batch["x"], torch.full_like(batch["x"], 1e3))}
        g1, g2 = torch.Generator().manual_seed(index), torch.Generator().manual_seed(index)
        loss1, _ = training_loss(model, GaussianDiffusion(), batch, generator=g1)
        loss2, _ = training_loss(model, GaussianDiffusion(), changed, generator=g2)
        assert torch.equal(loss1, loss2)
    assert data.batch(3)["x"].equal(data.batch(3)["x"])  # a batch depends on its index only: resumable


def test_fine_tuning_learns_a_domain_and_writes_an_inference_checkpoint(tmp_path):
    """~40 s of CPU: the held-out error on the domain's exact product column drops clearly (the forgetting
    guard off: learning a * b this fast costs generic skill; the noise gate off). Validation imputes with the
    starting checkpoint's stored settings, so the start is the shipped weights stored with the blend off: validation
    then scores the network this test measures. With the blend (session 41's engine, ``INPUT_PRIOR_CELLS``) the
    network gets no weight on this domain, no validation beats the start, and the starting weights are written back."""
    from dataclasses import replace

    from icl_diffusion.checkpoint import save_checkpoint

    shipped = load_pretrained()
    start = save_checkpoint(tmp_path / "plain.safetensors", shipped.model, shipped.diffusion,
                            sampler=replace(shipped.sampler, blend_inputs=False))
    out = tmp_path / "domain.safetensors"
    imputer = DiffusionImputer(checkpoint=str(start), random_state=0).fine_tune(
        [product_domain(s) for s in range(3)], out, max_steps=250, lr=1e-3, p_prior=0.1, val_every=50,
        max_forgetting=None, min_gain_se=0, progress=False)
    assert imputer.checkpoint == str(out)
    # The network itself learns the domain (its estimate alone, not blended with its closed-form inputs)...
    before, after = heldout_nrmse(str(start)), heldout_nrmse(str(out))  # the stored setting: no blend
    assert heldout_nrmse(None, blend_inputs=False) == before  # the shipped weights, as stored
    assert after < 0.93 * before, (before, after)
    # ... and what users get with the blend does not get worse with it: the blend's nearest-rows input reads a * b
    # far better (0.19) than even the fine-tuned network (0.92 -> 0.79).
    assert heldout_nrmse(str(out), blend_inputs=True) <= heldout_nrmse(None)
    info = load_checkpoint(out).info["fine_tuned"]
    assert info["source"] == str(start) and info["tables"] == [[400, 4]] * 3
    assert info["config"]["views"] == list(load_pretrained().sampler.ensemble)  # None: the checkpoint's
    assert info["val_after"] <= info["val_before"] and info["steps"] <= 250


@pytest.mark.parametrize(
    ("tables", "match"),
    [
        (pd.DataFrame({"a": [1.0, 2.0], "b": [1.0, 2.0]}), "the table has 2 rows; fine-tuning needs at least 8"),
        ([product_domain(0), pd.DataFrame({"a": [1.0] * 10, "x": [np.nan] * 10})],
         "table 1: column 'x' has no observed values"),
        (pd.DataFrame({"a": np.arange(10.0)}), "the table has 1 column"),
        ([], "at least one table"),
    ],
)
def test_bad_tables_fail_before_training_naming_table_and_column(tmp_path, tables, match):
    with pytest.raises(ValueError, match=match):
        fine_tune(tables, out=tmp_path / "x.safetensors")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_bad_settings_fail_before_training_naming_the_setting(tmp_path):
    with pytest.raises(ValueError, match=r"^views must be a non-empty tuple of identity, yeo_johnson, got \('log',\)$"):
        fine_tune(product_domain(0, n=40), out=tmp_path / "x.safetensors", views=("log",))
    for bad in (-0.01, float("nan")):
        with pytest.raises(ValueError, match=r"^max_forgetting must be a number >= 0 \(or None: no guard\)"):
            fine_tune(product_domain(0, n=40), out=tmp_path / "x.safetensors", max_forgetting=bad)
    for bad in (-1.0, float("nan"), "2", True):
        with pytest.raises(ValueError, match=r"^min_gain_se must be a number >= 0 \(0: no noise gate\)"):
            fine_tune(product_domain(0, n=40), out=tmp_path / "x.safetensors", min_gain_se=bad)
    assert list(tmp_path.iterdir()) == []


def test_cli_finetune_on_csv_tables(tmp_path, capsys):
    paths = []
    for s in range(2):
        paths.append(tmp_path / f"t{s}.csv")
        product_domain(s, n=60).to_csv(paths[-1], index=False)
    out = tmp_path / "ft.safetensors"
    code = main(["finetune", "--data", *map(str, paths), "-o", str(out), "max_steps=2", "val_every=1",
                 "--no-progress"])
    assert code == 0 and out.exists() and "validation score" in capsys.readouterr().out
    assert main(["finetune", "--data", str(paths[0]), "-o", str(out), "max_stepz=2"]) == 1
    assert "unknown fine-tuning setting 'max_stepz=2'" in capsys.readouterr().err
    assert main(["finetune", "--from", str(tmp_path / "missing.safetensors")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


def test_table_identities_and_point_inputs_reach_the_model():
    """The user-table batches of one table: the model sees the column / level identity vectors inference gives
    those columns, and at t = T-1 its unknown numeric cells at 0 (the one call's input); prior batches and
    steps outside training keep pretraining's fresh identities and noisy inputs."""
    df = product_domain(0, n=60).assign(k=lambda d: np.where(d["a"] > 0, "p", "n")).astype({"k": "category"})
    enc = encode_tables(df, max_classes=100)
    cfg = FineTuneConfig(p_prior=0.0, table_identities=True, point_inputs=True, mask_kinds=("mcar",),
                         min_features=5, rows=(16, 16), batch_size=3)
    batch = UserTableDataset(enc, cfg, PriorConfig()).batch(0)
    assert batch["columns"].shape == (3, 5) and all(sorted(c.tolist()) == list(range(5)) for c in batch["columns"])
    torch.manual_seed(0)
    module = FineTuneLitModule(n_features=5, n_levels=2, point_inputs=True,
                               model=DenoiserConfig(d_model=32, n_blocks=1, n_heads=2), diffusion={},
                               loss={"p_t_max": 1.0, "p_uncond": 0.0})
    seen = {}
    module.model.register_forward_pre_hook(lambda m, args, kwargs: seen.update(args=args, kwargs=kwargs),
                                           with_kwargs=True)

    def run(columns):
        module._columns = columns
        training_loss(module.model, module.diffusion, batch, module.loss_cfg, torch.Generator().manual_seed(0))
        module._columns = None
        return seen["args"][0], seen["kwargs"]

    x_t, kwargs = run(batch["columns"])
    cols = batch["columns"]
    assert torch.equal(kwargs["col_embed"], module.model.column_embeddings(5)[cols])
    assert torch.equal(kwargs["level_embed"], module.model.level_embeddings(5, 2)[cols])
    unknown_num = ~batch["known"] & ~batch["is_cat"][:, None, :]
    assert bool(unknown_num.any()) and bool((x_t[unknown_num] == 0).all())
    x_t, kwargs = run(None)  # not a user-table training step: pretraining's inputs
    assert not torch.equal(kwargs["col_embed"], module.model.column_embeddings(5)[cols])
    assert bool((x_t[unknown_num] != 0).all())


def test_cli_reads_every_fine_tuning_setting_by_its_type():
    from dataclasses import fields

    from icl_diffusion.cli import FINETUNE_KINDS, UserError, _finetune_setting
    from icl_diffusion.finetune import FineTuneConfig

    kinds = {f.name: str(f.type) for f in fields(FineTuneConfig)}
    assert set(kinds.values()) <= set(FINETUNE_KINDS)  # every field has a reader
    read = lambda item: _finetune_setting(item, *item.split("=", 1), kinds[item.split("=", 1)[0]])
    assert read("mask_kinds=mcar,mar") == ("mcar", "mar")
    assert read("train_only=[value, num_head]") == ("value", "num_head")
    assert read("views=identity,yeo_johnson") == ("identity", "yeo_johnson")
    assert read("table_identities=true") is True and read("point_inputs=0") is False
    assert read("max_forgetting=none") is None and read("max_forgetting=0.05") == 0.05
    assert read("rows=64,128") == (64, 128) and read("lr=3e-4") == 3e-4 and read("max_steps=20") == 20
    for bad, says in (("point_inputs=maybe", "true or false"), ("rows=64", "two integers"), ("max_steps=2.5", "an integer")):
        with pytest.raises(UserError, match=says):
            read(bad)


def test_anchor_adds_its_weight_times_the_squared_distance_from_the_start_weights():
    """L2-SP (``FineTuneConfig.anchor``): the training loss plus anchor x ||weights - start weights||^2, over
    the trained parameters; 0 at the start, and not before the start weights are recorded."""
    df = product_domain(0, n=60)
    batch = UserTableDataset(encode_tables(df, max_classes=100), FineTuneConfig(p_prior=0.0), PriorConfig()).batch(0)
    batch.pop("index")
    losses = {}
    for anchor in (0.0, 0.5):
        torch.manual_seed(0)
        module = FineTuneLitModule(anchor=anchor, model=DenoiserConfig(d_model=32, n_blocks=1, n_heads=2),
                                   diffusion={}, loss={}, seed=0)
        if anchor:
            with pytest.raises(RuntimeError, match="set_start"):
                module.training_step(batch, 0)
        module.set_start()
        at_start = module.training_step(batch, 0)
        with torch.no_grad():
            for p in module.model.parameters():
                p.add_(0.01)
        drift = sum(p.numel() for p in module.model.parameters()) * 0.01**2
        losses[anchor] = (at_start, module.training_step(batch, 0), drift)
    assert torch.allclose(losses[0.0][0], losses[0.5][0])  # no drift at the start: no penalty
    moved_plain, moved_anchored, drift = losses[0.0][1], losses[0.5][1], losses[0.5][2]
    assert float((moved_anchored - moved_plain).detach()) == pytest.approx(0.5 * drift, rel=1e-4)


def test_validation_imputes_as_the_estimator_does():
    """Early stopping reads the path users run: the validation score of a table is the estimator's error on the
    same hidden cells (the checkpoint's stored settings, its ensemble included)."""
    from icl_diffusion.checkpoint import load_pretrained
    from icl_diffusion.evaluation import evaluate_engine
    from icl_diffusion.finetune import validation_batches

    df = product_domain(0, n=120)
    batch = validation_batches(encode_tables(df, max_classes=100), seed=0)[0]
    from icl_diffusion.estimators import _seed

    # the estimator's random_state=0 is the engine's seed _seed(0) (the blend's held-out cells are seeded)
    got = evaluate_engine(load_pretrained(), [batch], seed=_seed(0))["user_nrmse"]
    hide = (batch["observed"][0] & ~batch["known"][0]).numpy()
    filled = DiffusionImputer(random_state=0).fit_transform(df.mask(hide))
    err = ((filled - df) / df.std()).to_numpy()[hide]
    assert got == pytest.approx(float(np.sqrt((err**2).mean())), rel=1e-3)


def test_a_constant_column_does_not_swamp_the_validation_score():
    """A flag that is 0 in every row of a validation table (DAAG's cps1 and psid1: no treated row) has no scale;
    scored in its own std it turned the score into ~1e6 noise, which early stopping then followed. It is left
    out: the score is the other columns' error, as the estimator's on the same cells."""
    from icl_diffusion.estimators import _seed
    from icl_diffusion.evaluation import evaluate_engine
    from icl_diffusion.finetune import validation_batches

    df = product_domain(0, n=120)
    flagged = df.assign(flag=0.0)
    scores = []
    for table in (df, flagged):
        batch = validation_batches(encode_tables(table, max_classes=100), seed=0)[0]
        scores.append(evaluate_engine(load_pretrained(), [batch], seed=_seed(0))["user_nrmse"])
        hide = (batch["observed"][0] & ~batch["known"][0]).numpy()
    assert hide[:, 4].any()  # the flag's cells were hidden and imputed
    assert np.isfinite(scores[1]) and scores[1] < 2 * scores[0]


def test_table_identities_apply_to_tables_of_one_schema():
    from icl_diffusion.finetune import shared_schema

    a, b = product_domain(0, n=40), product_domain(1, n=60)
    assert shared_schema([a, b], 100) and shared_schema(a, 100)
    assert not shared_schema([a, b[["b", "a", "c", "d"]]], 100)  # another order
    assert not shared_schema([a, b.rename(columns={"d": "e"})], 100)
    kinds = [t.assign(k=np.where(t["a"] > 0, "p", "n")) for t in (a, b)]
    assert shared_schema(kinds, 100)
    assert not shared_schema([kinds[0], kinds[1].assign(k="p")], 100)  # one level only: other codes


def test_one_table_validation_rows_are_imputed_with_the_training_rows_as_context():
    from icl_diffusion.finetune import split, validation_batches

    df = product_domain(0, n=200).mask(np.random.default_rng(2).random((200, 4)) < 0.1)
    train, val = split(encode_tables(df, max_classes=100), val_frac=0.2, seed=0)
    complete = train[0].known.all(1)
    batch = validation_batches(val, seed=0, context=train[0], max_context_rows=50)[0]
    n_val = len(val[0].x)
    assert batch["x"].shape == (1, 50 + n_val, 4) and complete.sum() > 50
    context_x, context_known = batch["x"][0, :50].numpy(), batch["known"][0, :50].numpy()
    assert context_known.all()  # complete training rows, none of their cells hidden
    assert all((train[0].x[complete] == row).all(1).any() for row in context_x)
    hidden = (batch["observed"][0] & ~batch["known"][0]).numpy()
    assert not hidden[:50].any() and hidden[50:].sum() > 0 and not (hidden[50:] & ~val[0].known).any()
    alone = validation_batches(val, seed=0)[0]  # several tables: each alone, the same cells hidden
    assert torch.equal(alone["known"][0], batch["known"][0, 50:])


def test_user_batches_are_drawn_in_the_views_inference_ensembles():
    """``FineTuneConfig.views``: each user-table batch is the table as one ensemble member sees it (a Yeo-Johnson
    view fitted on the subset's known cells); the same subsets and masks either way."""
    from icl_diffusion.finetune import yeo_johnson_view

    rng = np.random.default_rng(0)
    df = product_domain(0, n=200).assign(e=rng.lognormal(sigma=1.0, size=200))
    enc = encode_tables(df, max_classes=100)
    data = {v: UserTableDataset(enc, FineTuneConfig(p_prior=0.0, views=v), PriorConfig())
            for v in (("identity",), ("yeo_johnson",), ("identity", "yeo_johnson"))}
    skew = lambda x, known: float(torch.stack([torch.as_tensor(
        pd.Series(x[b, known[b, :, -1], -1].numpy()).skew()) for b in range(len(x))]).mean())
    for index in range(3):
        plain, yj = data[("identity",)].batch(index), data[("yeo_johnson",)].batch(index)
        assert torch.equal(plain["known"], yj["known"]) and torch.equal(plain["columns"], yj["columns"])
        torch.testing.assert_close(yj["x"], yeo_johnson_view(plain["x"], plain["known"], plain["is_cat"]))
    both = {bool(torch.equal(data[("identity", "yeo_johnson")].batch(i)["x"], data[("identity",)].batch(i)["x"]))
            for i in range(12)}
    assert both == {True, False}  # both views drawn
    x = torch.as_tensor(enc[0].x)[None]
    known = torch.as_tensor(enc[0].known)[None]
    assert skew(yeo_johnson_view(x, known, torch.as_tensor(enc[0].is_cat)[None]), known) < 0.3 < skew(x, known)


def test_noise_gate_keeps_only_gains_beyond_the_validation_cells_noise():
    """``min_gain_se``: a validation that beats the best score is kept only if its per-cell gain over the start's
    validation cells exceeds that many paired standard errors: a noisy 1% gain is refused (the starting weights
    stay), a clear one kept; off (0), the noisy one is kept."""
    from types import SimpleNamespace

    from icl_diffusion.finetune import KeepBest

    model = torch.nn.Linear(2, 1)
    start = torch.as_tensor(np.random.default_rng(0).chisquare(1, 2000))
    noisy = start * torch.as_tensor(np.random.default_rng(1).uniform(0.4, 1.58, 2000))  # ~1% lower, spread wide
    clear = 0.8 * start

    def validate(keep, step, nrmse, losses):
        trainer = SimpleNamespace(sanity_checking=False, global_step=step, should_stop=False,
                                  callback_metrics={"val/user_nrmse": torch.tensor(nrmse)})
        keep.on_validation_end(trainer, SimpleNamespace(model=model, cell_losses=losses))

    keep = KeepBest(1.0, patience=5, start_state={}, start_losses=start, min_gain_se=1.0)
    validate(keep, 1, 0.99, noisy)
    assert (keep.best_step, keep.best, keep.within_noise) == (0, 1.0, 1)
    validate(keep, 2, 0.9, clear)
    assert (keep.best_step, keep.best, keep.within_noise) == (2, pytest.approx(0.9), 1)
    off = KeepBest(1.0, patience=5, start_state={}, start_losses=start, min_gain_se=0.0)
    validate(off, 1, 0.99, noisy)
    assert off.best_step == 1


def test_validation_cells_losses_pair_up_cell_by_cell():
    from icl_diffusion.evaluation import cell_losses

    x = torch.tensor([[[1.0, 0.0], [2.0, 1.0], [3.0, 2.0], [4.0, 1.0]]])
    known = torch.tensor([[[True, True], [False, False], [True, True], [False, True]]])
    batch = {"x": x, "known": known, "is_cat": torch.tensor([[False, True]])}
    filled = torch.where(known, x, torch.tensor([[[0.0, 0.0], [2.0, 2.0], [0.0, 0.0], [5.0, 0.0]]]))
    std = float(x[0, :, 0].std())
    expected = torch.tensor([0.0, (1 / std) ** 2, 1.0], dtype=torch.float64)  # numeric cells, then categorical
    assert torch.allclose(cell_losses(filled, batch), expected)


def test_forgetting_guard_refuses_weights_that_lose_generic_skill():
    """``max_forgetting``: a validation that beats the best score is kept only if its Gaussian-oracle ratio on
    the guard's tables is within max_forgetting of the start's; the guard's tables are Gaussian, 30% MCAR."""
    from types import SimpleNamespace

    from icl_diffusion.finetune import KeepBest, guard_batches

    model = torch.nn.Linear(2, 1)
    keep = KeepBest(1.0, patience=5, start_state={}, ratio_before=1.10, max_forgetting=0.02)
    for step, (nrmse, ratio) in enumerate([(0.8, 1.15), (0.9, 1.11), (0.7, 1.13), (0.85, 1.115)], start=1):
        trainer = SimpleNamespace(sanity_checking=False, global_step=step, should_stop=False,
                                  callback_metrics={"val/user_nrmse": torch.tensor(nrmse),
                                                    "val/gaussian_ratio": torch.tensor(ratio)})
        keep.on_validation_end(trainer, SimpleNamespace(model=model))
    assert (keep.best_step, keep.best, keep.rejected) == (4, pytest.approx(0.85), 2)
    unguarded = KeepBest(1.0, patience=5, start_state={}, ratio_before=1.10, max_forgetting=None)
    unguarded.on_validation_end(SimpleNamespace(sanity_checking=False, global_step=1, should_stop=False,
                                                callback_metrics={"val/user_nrmse": torch.tensor(0.8),
                                                                  "val/gaussian_ratio": torch.tensor(1.5)}),
                                SimpleNamespace(model=model))
    assert unguarded.best_step == 1
    (batch,) = guard_batches()
    assert batch["family"] == "gaussian" and batch["x"].shape == (4, 256, 8)
    assert abs(float((~batch["known"]).float().mean()) - 0.3) < 0.01
