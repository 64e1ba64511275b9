"""Seeded, resumable, infinite streams of prior batches for DataLoader / DDP training.

Batch ``i`` of a stream is a pure function of (seed, rank, i): its tables are sampled from a generator
seeded with a hash of those numbers, its shape (B, N, F) from one seeded with (seed, i) alone.
Consequences:
  * same seed -> same stream, on any machine, whatever ``num_workers`` is (worker w of W produces the
    indices w, w + W, ..., and DataLoader interleaves workers in that same order);
  * distributed ranks get disjoint streams (rank enters the hash); workers get disjoint indices;
  * at each step every rank's batch has the same shape, so the same work: under DDP no rank waits at the
    gradient all-reduce for one that drew a larger table;
  * resuming at index k (``start_index`` or ``load_state_dict``) continues exactly where a run stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ._random import Rng
from .batch import sample_batch, table_shape
from .config import PriorConfig

# Domain tags keep the training streams, the fixed validation sets and the training batches' shapes of one
# seed apart (icl_diffusion takes 2 for fine-tuning's user tables and 3 for the training steps' noise).
_TRAIN_STREAM = 0
_FIXED_STREAM = 1
_SHAPE_STREAM = 4


def stream_seed(seed: int, *parts: int) -> int:
    """A well-mixed 64-bit seed for (seed, *parts) (numpy SeedSequence)."""
    return int(np.random.SeedSequence([int(seed), *map(int, parts)]).generate_state(1, np.uint64)[0])


def stream_generator(seed: int, *parts: int) -> torch.Generator:
    """A CPU generator seeded by ``stream_seed(seed, *parts)``."""
    return torch.Generator().manual_seed(stream_seed(seed, *parts))


def current_rank() -> int:
    """torch.distributed rank if initialized, else env RANK, else 0."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


class PriorDataset(IterableDataset):
    """Infinite stream of whole batches (dicts from ``sample_batch``); use ``DataLoader(batch_size=None)``.

    Each yielded batch also carries ``"index"`` (int), its position in the stream. ``state_dict()``
    holds the index of the next batch, counting the batches this object has yielded.

    With ``num_workers > 0`` the batches are produced by copies of this object in the worker processes,
    so the main-process object cannot count them: before re-iterating (a new epoch) or checkpointing,
    call ``load_state_dict({"next_index": last_batch["index"] + 1})`` or pass ``start_index``;
    otherwise the stream would replay from where this object last stood. ``device="cuda"`` only makes
    sense with ``num_workers=0``.

    Extra keyword arguments (``n_rows``, ``n_features``, ``family``, ``mask_kind``) are passed to
    ``sample_batch``, e.g. to fix the table size for a curriculum stage.
    """

    def __init__(
        self,
        cfg: PriorConfig,
        seed: int,
        *,
        batch_size: int | None = None,
        device: torch.device | str = "cpu",
        start_index: int = 0,
        **sample_kwargs,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.seed = int(seed)
        self.batch_size = batch_size
        self.device = device
        self.start_index = int(start_index)
        self.next_index = int(start_index)
        self.sample_kwargs = sample_kwargs

    def shape(self, index: int) -> tuple[int, int, int]:
        """(B, N, F) of batch ``index``, the same for every rank: what ``batch_size`` and the ``n_rows`` /
        ``n_features`` keywords do not fix is drawn from (seed, index) by ``priors.batch.table_shape``."""
        generator = stream_generator(self.seed, _SHAPE_STREAM, index)
        return table_shape(self.cfg, Rng(generator), batch_size=self.batch_size,
                           n_rows=self.sample_kwargs.get("n_rows"), n_features=self.sample_kwargs.get("n_features"))

    def batch(self, index: int, rank: int | None = None) -> dict:
        """Batch ``index`` of this stream (for ``rank``, default the current one)."""
        rank = current_rank() if rank is None else rank
        B, N, F = self.shape(index)
        generator = stream_generator(self.seed, _TRAIN_STREAM, rank, index)
        kwargs = {**self.sample_kwargs, "batch_size": B, "n_rows": N, "n_features": F}
        out = sample_batch(self.cfg, generator, device=self.device, **kwargs)
        out["index"] = index
        return out

    def indices(self, worker_id: int = 0, num_workers: int = 1) -> Iterator[int]:
        """Stream positions produced by one worker: start, start + W, ... shifted by ``worker_id``."""
        index = self.next_index + worker_id
        while True:
            yield index
            index += num_workers

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank = current_rank()
        for index in self.indices(worker_id, num_workers):
            batch = self.batch(index, rank)
            self.next_index = index + 1  # before yielding: the consumer may stop right after this batch
            yield batch

    def state_dict(self) -> dict:
        return {"seed": self.seed, "next_index": self.next_index}

    def load_state_dict(self, state: dict) -> None:
        if "seed" in state and int(state["seed"]) != self.seed:
            raise ValueError(f"state is for seed {state['seed']}, this stream has seed {self.seed}")
        self.start_index = self.next_index = int(state["next_index"])


def fixed_batches(cfg: PriorConfig, seed: int, n: int, **kwargs) -> list[dict]:
    """A deterministic list of ``n`` batches (e.g. a validation set), disjoint from training streams.

    ``kwargs`` go to ``sample_batch`` (batch_size, n_rows, n_features, family, mask_kind, device).
    """
    return [sample_batch(cfg, stream_generator(seed, _FIXED_STREAM, i), **kwargs) for i in range(n)]
