"""Prior tests run single-threaded: the prior's ops are small, and on a shared 2-core machine intra-op
threads only add contention (the DataLoader workers that run the prior in training are single-threaded
too)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
