"""The training step does not make the host wait for the device, beyond a short list of justified reads.

On a CPU nothing waits, so the CPU test counts the operations that synchronize on CUDA (a
``TorchDispatchMode`` sees every aten call of the forward, the backward and the optimizer step) and names
the icl_diffusion function that made each. With a GPU the same step also runs under
``torch.cuda.set_sync_debug_mode`` (skipped without one).
"""

from __future__ import annotations

import collections
import traceback
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from icl_diffusion.diffusion import GaussianDiffusion
from icl_diffusion.finetune import FineTuneConfig, UserDataModule, UserTableDataset, encode_tables
from icl_diffusion.gaussian_feature import one_hot_layout
from icl_diffusion.lit import PriorDataModule
from icl_diffusion.model import Denoiser, DenoiserConfig
from icl_diffusion.training import host_facts, training_loss
from priors import PriorConfig, sample_batch

pytestmark = pytest.mark.usefixtures("single_thread")

_aten = torch.ops.aten
# aten operations that synchronize on CUDA: a tensor read as a Python number (.item(), bool(), int(), float()),
# an output whose size depends on the data (boolean-mask indexing, nonzero, unique), and linear algebra that
# checks its status codes on the host (linalg.cholesky/inv/solve, eigh; batched cholesky_solve runs MAGMA).
SYNCING = {_aten._local_scalar_dense, _aten.nonzero, _aten.masked_select, _aten.unique_consecutive,
           _aten._unique2, _aten.equal, _aten.is_nonzero, _aten._linalg_check_errors, _aten._linalg_eigh,
           _aten.cholesky_solve, _aten.cholesky_inverse, _aten.repeat_interleave}

# What one training step still reads on the host, by (module, function, op), each with its reason.
REMAINING = {
    # The spectrum clip of the pairwise covariance: torch.linalg.eigh checks its status on the host and has
    # no _ex variant. (On CUDA only up to 32 x 32: above, clip_spectrum reads nothing, see its test.)
    ("gaussian_feature", "clip_spectrum", "_linalg_eigh"): 1,
}
# (Whether the batch has a categorical cell, the one-hot width and whether it has level slots were read here
# too; they are host facts now, like n_levels. With point_mass_feature, as the CPU recipes train, the width is
# still read: which numeric columns have a point mass depends on the values. A host bound of it (every numeric
# column with its indicator slot, the fit padded and told its real width) removed the read and cost 19% of a CPU
# step (session 20): not taken; a GPU recipe without point masses reads nothing here.)
# Reads made on CPU only: F.one_hot checks its codes' range with .item() on CPU (on CUDA it relies on device
# asserts); the level scores (per 256-row chunk, and these batches have one) and each EM iteration (10 here)
# invert with LAPACK's potri on CPU (bit for bit with the recorded references) and with triangular solves elsewhere.
EM_ITERS = 10
# EM reads on CPU which tables have a known cell (an unconditional table has none and keeps its start; boolean
# indexing when one has none), which on CUDA would make the host wait: there every table runs EM.
CPU_ONLY = {
    ("model", "embed", "_local_scalar_dense"): 2,
    ("gaussian_feature", "_cholesky_inverse", "cholesky_inverse"): 2 + EM_ITERS,
    ("gaussian_feature", "table_gaussian", "_local_scalar_dense"): 1,
}
# ... and where some table has none: whether any has one, their cells and start selected, their fit put back.
EM_SKIP = {
    ("gaussian_feature", "table_gaussian", "_local_scalar_dense"): 1,
    ("gaussian_feature", "table_gaussian", "index"): 4,
    ("gaussian_feature", "table_gaussian", "index_put_"): 2,
}


class SyncCounter(TorchDispatchMode):
    """Counts the SYNCING operations (and boolean-mask indexing) by the icl_diffusion function that called
    them: (module, function, op) -> count."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func.overloadpacket
        bool_index = packet in (_aten.index, _aten.index_put, _aten.index_put_) and any(
            torch.is_tensor(i) and i.dtype == torch.bool for i in args[1])
        if packet in SYNCING or bool_index:
            stack = traceback.extract_stack()[:-1]
            # AdamW reads its step counters, host tensors also next to CUDA parameters (unless capturable).
            if not any(f.name == "_get_value" and f.filename.endswith("optimizer.py") for f in stack):
                ours = [f for f in stack if "icl_diffusion" in Path(f.filename).parts]
                frame = ours[-1] if ours else stack[-1]
                self.counts[(Path(frame.filename).stem, frame.name, packet.__name__)] += 1
        return func(*args, **(kwargs or {}))


def _batches() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    small = {"n_rows": [16, 64], "n_features": [3, 8]}
    return [sample_batch(PriorConfig(p_has_categorical=1.0, **small), g),  # categorical targets
            sample_batch(PriorConfig(**small), g, mask_kind="prediction"),  # query rows
            sample_batch(PriorConfig(**small), g, family="gaussian")]  # numeric only


def _model(**overrides) -> Denoiser:
    torch.manual_seed(0)
    return Denoiser(DenoiserConfig(d_model=32, n_blocks=2, n_heads=2, gaussian_em_iters=EM_ITERS, **overrides))


def _step(model: Denoiser, batch: dict, opt: torch.optim.Optimizer) -> None:
    loss, _ = training_loss(model, GaussianDiffusion(), batch, generator=torch.Generator().manual_seed(1))
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def _expected(batch: dict, em_skip: bool = False) -> collections.Counter:
    expected = collections.Counter(REMAINING) + collections.Counter(CPU_ONLY)
    if em_skip:  # the step drew an unconditional table
        expected += collections.Counter(EM_SKIP)
    if not batch["is_cat"].any():  # no level slot: the numeric estimate path inverts nothing, EM does
        expected[("gaussian_feature", "_cholesky_inverse", "cholesky_inverse")] = EM_ITERS
    return expected


@pytest.mark.parametrize("kind", [0, 1, 2], ids=["categorical", "prediction", "gaussian"])
def test_training_step_reads_the_device_only_where_listed(kind):
    """One step (loss, backward, gradient clipping, AdamW) with the host facts in the batch, as the
    LightningModule passes it: only the REMAINING reads (and the CPU-only ones). Before, this counted 41 on
    the categorical batch (then 4 + the CPU-only ones; the last three are host facts now): 6 reads in training_loss (three .item() of the stats, bool(query.any()),
    int(n_classes.max()), cat_cells.any()), boolean-mask indexing (2, and 1 in the backward), 13 Cholesky
    status checks, 11 cholesky_solve, 2 cholesky_inverse, eigh, 3 shape reads and F.one_hot's 2; and the
    float64 schedule was copied to the device at every q_sample (not visible on a CPU)."""
    batch = _batches()[kind]
    batch = {**batch, **host_facts(batch)}
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    _step(model, batch, opt)  # AdamW's state is made at the first step
    with SyncCounter() as counter:
        _step(model, batch, opt)
    assert counter.counts == _expected(batch, ("gaussian_feature", "table_gaussian", "index") in counter.counts)


def test_prior_batches_carry_host_facts():
    """The prior's DataModule adds the host facts to a batch before it moves to the device, so training_step
    does not read them there (the reads training_loss would make otherwise); host_facts itself reads them all
    in one copy (no scalar read each), which matters where the prior makes its batches on the GPU."""
    batch = _batches()[1]
    with SyncCounter() as counter:
        moved = PriorDataModule().on_before_batch_transfer(batch, 0)
    assert not counter.counts
    assert moved["n_levels"] == max(2, int(batch["n_classes"].max())) and moved["has_query"] is True
    with SyncCounter() as counter:
        training_loss(_model(), GaussianDiffusion(), moved)
    assert not [k for k in counter.counts if k[:2] == ("training", "host_facts")]


def test_host_facts_are_what_the_step_would_read():
    """Each host fact equals what the step read before it was one: the one-hot width and level slots of the
    closed-form feature's layout, and whether any categorical cell could be a target."""
    for batch in _batches():
        facts = host_facts(batch)
        layout = one_hot_layout(batch["is_cat"], batch["n_classes"])
        assert facts["one_hot"] == {"one_hot_width": layout["src"].shape[1],
                                    "has_levels": bool((layout["level"] >= 0).any())}
        assert facts["has_categorical"] == bool(batch["is_cat"].any())
    categorical = _batches()[0]
    observed = ~categorical["is_cat"][:, None, :].expand_as(categorical["known"])  # categorical cells it never has
    assert not host_facts({**categorical, "observed": observed})["has_categorical"]


def test_host_facts_leave_the_step_unchanged():
    """The step gives the same loss, and the network the same gradients, with the closed-form feature's layout
    from the host facts as when it reads it from the device (the categorical batch: every path of the feature;
    ``one_hot`` None asks for the device's: a batch without host facts would not, since training_loss computes
    them itself)."""
    batch = _batches()[0]
    facts = host_facts(batch)
    runs = []
    for one_hot in (None, facts["one_hot"]):
        given = {**batch, **facts, "one_hot": one_hot}
        model = _model()
        loss, _ = training_loss(model, GaussianDiffusion(), given, generator=torch.Generator().manual_seed(1))
        loss.backward()
        runs.append((loss, [p.grad for p in model.parameters()]))
    assert torch.equal(runs[0][0], runs[1][0])
    assert all(a is b is None or torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))


def test_fine_tuning_batches_carry_host_facts():
    """Fine-tuning batches (a user table's subsets, and the prior's share) get the host facts before they move
    to the device too, so their training step makes the same reads as pretraining's."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60), "c": rng.choice(["x", "y", "z"], 60)})
    tables = encode_tables(table, max_classes=100)
    data = UserDataModule(tables, FineTuneConfig(p_prior=0.5), PriorConfig(n_rows=(16, 32), n_features=(2, 4)))
    batches = [UserTableDataset(tables, data.cfg, data.prior).batch(i) for i in range(6)]
    assert {"user", "prior"} == {"prior" if "family" in b else "user" for b in batches}
    model = _model()
    for batch in batches:
        moved = data.on_before_batch_transfer(batch, 0)
        assert moved["n_levels"] == max(2, int(batch["n_classes"].max()))
        assert moved["has_query"] == bool(batch["query"].any())
        with SyncCounter() as counter:
            training_loss(model, GaussianDiffusion(), moved)
        assert not [k for k in counter.counts if k[:2] in {("training", "host_facts"), ("training", "training_loss"),
                                                           ("model", "forward"), ("gaussian_feature", "one_hot_layout"),
                                                           ("gaussian_feature", "cell_estimates")}]


def test_model_takes_n_levels_and_the_layout_from_the_caller():
    """Denoiser.forward with n_levels and the one-hot facts (training passes host_facts') reads nothing from
    n_classes and gives the same outputs as when it reads them itself."""
    batch = _batches()[0]
    model = _model()
    args = (batch["x"], torch.full((batch["x"].shape[0],), 500), batch["known"], batch["is_cat"], batch["n_classes"])
    facts = host_facts(batch)
    with SyncCounter() as counter:
        given = model(*args, n_levels=facts["n_levels"], one_hot=facts["one_hot"])
    assert not [k for k in counter.counts if k[:2] in {("model", "forward"), ("gaussian_feature", "one_hot_layout"),
                                                       ("gaussian_feature", "cell_estimates")}]
    read = model(*args)
    assert torch.equal(given[0], read[0]) and torch.equal(given[1], read[1])


class _CountSteps(L.Callback):
    """Counts the syncing operations from the start to the end of each training batch in a real fit."""

    def __init__(self) -> None:
        self.counter = SyncCounter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.counter.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.counter.__exit__(None, None, None)


def test_lightning_fit_adds_no_device_reads(tmp_path):
    """A real Lightning step (training_step, backward, clipping, AdamW, logging; no progress bar, logs
    written at step 1000) reads the device only where training_loss does."""
    from icl_diffusion.train import compose, train

    counting = "+callbacks.count={_target_:test_training_syncs._CountSteps}"
    module = train(compose(["model=tiny", "prior=gaussian", "trainer.enable_progress_bar=false",
                            "trainer.max_steps=2", "trainer.log_every_n_steps=1000",
                            "trainer.val_check_interval=1000", "callbacks.learning_curves=null", "val.real=false",
                            f"out_dir={tmp_path}", counting]))
    counts = next(c for c in module.trainer.callbacks if isinstance(c, _CountSteps)).counter.counts
    assert counts[("gaussian_feature", "clip_spectrum", "_linalg_eigh")] == 2  # one per step: counted
    assert {k[:2] for k in counts} <= {k[:2] for k in (*REMAINING, *CPU_ONLY)}, counts


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_training_step_syncs():
    """On a GPU, torch.cuda.set_sync_debug_mode("warn") warns once per synchronizing call: no more than
    the REMAINING reads."""
    batch = {k: (v.cuda() if torch.is_tensor(v) else v) for k, v in _batches()[0].items()}
    batch = {**batch, **host_facts(_batches()[0])}
    model = _model().cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    _step(model, batch, opt)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _step(model, batch, opt)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= sum(REMAINING.values()), syncs
