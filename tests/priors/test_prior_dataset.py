"""PriorDataset / fixed_batches: seeded streams, per-worker and per-rank streams, resuming."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader

import priors.dataset as dataset_module
from priors import PriorConfig, PriorDataset, fixed_batches

# Tiny tables: these tests are about which batch comes when, not about the tables.
CFG = PriorConfig(n_rows=(8, 24), n_features=(2, 6), max_cells=512, max_batch_size=8)


def _take(ds: PriorDataset, n: int) -> list[dict]:
    return list(itertools.islice(iter(ds), n))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a
    )


@pytest.fixture(autouse=True)
def _rank_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)


def test_same_seed_same_stream_and_different_seed_differs() -> None:
    a, b = _take(PriorDataset(CFG, seed=1), 4), _take(PriorDataset(CFG, seed=1), 4)
    assert all(_same(x, y) for x, y in zip(a, b))
    assert [x["index"] for x in a] == [0, 1, 2, 3]
    c = _take(PriorDataset(CFG, seed=2), 4)
    assert not any(_same(x, y) for x, y in zip(a, c))
    assert not _same(a[0], a[1])  # consecutive batches differ


def test_workers_split_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _take(PriorDataset(CFG, seed=3), 6)
    per_worker = []
    for worker_id in range(2):
        info = SimpleNamespace(id=worker_id, num_workers=2)
        monkeypatch.setattr(dataset_module, "get_worker_info", lambda info=info: info)
        per_worker.append(_take(PriorDataset(CFG, seed=3), 3))
    assert [b["index"] for b in per_worker[0]] == [0, 2, 4]
    assert [b["index"] for b in per_worker[1]] == [1, 3, 5]
    assert not any(_same(x, y) for x, y in zip(*per_worker))  # distinct streams per worker
    # Interleaved, the workers reproduce the single-process stream.
    interleaved = [b for pair in zip(*per_worker) for b in pair]
    assert all(_same(x, y) for x, y in zip(interleaved, stream))


def test_real_dataloader_workers_reproduce_the_stream() -> None:
    stream = _take(PriorDataset(CFG, seed=4), 4)
    loader = DataLoader(PriorDataset(CFG, seed=4), batch_size=None, num_workers=2)
    loaded = list(itertools.islice(iter(loader), 4))
    assert [b["index"] for b in loaded] == [0, 1, 2, 3]
    assert all(_same(x, y) for x, y in zip(loaded, stream))


def test_ranks_get_distinct_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    rank0 = _take(PriorDataset(CFG, seed=5), 3)
    monkeypatch.setenv("RANK", "1")
    rank1 = _take(PriorDataset(CFG, seed=5), 3)
    assert not any(_same(x, y) for x, y in zip(rank0, rank1))
    assert _same(PriorDataset(CFG, seed=5).batch(2, rank=0), rank0[2])


def test_ranks_draw_the_same_shapes_with_their_own_tables() -> None:
    """Batch i has one shape (B, N, F) on every rank, drawn from (seed, i) (so no DDP rank waits for one that
    drew a larger table), and its own tables per rank; a fixed size keyword still holds."""
    for ds in (PriorDataset(CFG, seed=5), PriorDataset(CFG, seed=5, n_features=4)):
        rank0, rank1 = ([ds.batch(i, rank=r) for i in range(12)] for r in (0, 1))
        assert [b["x"].shape for b in rank0] == [b["x"].shape for b in rank1] == [ds.shape(i) for i in range(12)]
        assert len({b["x"].shape for b in rank0}) > 3  # the shape still changes from step to step
        assert not any(torch.equal(a["x"], b["x"]) for a, b in zip(rank0, rank1))
    assert {b["x"].shape[2] for b in rank0} == {4}


def test_resume_continues_the_stream() -> None:
    stream = _take(PriorDataset(CFG, seed=6), 6)
    ds = PriorDataset(CFG, seed=6)
    it = iter(ds)
    first = [next(it) for _ in range(2)]
    assert all(_same(x, y) for x, y in zip(first, stream))
    state = ds.state_dict()
    assert state["next_index"] == 2  # counts the batches yielded

    resumed = PriorDataset(CFG, seed=6)
    resumed.load_state_dict(state)
    assert all(_same(x, y) for x, y in zip(_take(resumed, 4), stream[2:]))
    started = PriorDataset(CFG, seed=6, start_index=3)
    assert all(_same(x, y) for x, y in zip(_take(started, 3), stream[3:]))
    with pytest.raises(ValueError):
        PriorDataset(CFG, seed=7).load_state_dict(state)


def test_fixed_batches_are_deterministic_and_not_the_training_stream() -> None:
    a, b = fixed_batches(CFG, 0, 3), fixed_batches(CFG, 0, 3)
    assert all(_same(x, y) for x, y in zip(a, b))
    train = _take(PriorDataset(CFG, seed=0), 3)
    assert not any(x["x"].shape == y["x"].shape and torch.equal(x["x"], y["x"]) for x, y in zip(a, train))
    sized = fixed_batches(CFG, 1, 2, batch_size=2, n_rows=10, n_features=3, family="gaussian")
    assert all(s["x"].shape == (2, 10, 3) and s["family"] == "gaussian" for s in sized)
