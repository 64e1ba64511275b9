"""Regression tests of the shipped checkpoint: it must beat mean imputation and keep its recorded outputs.

Re-record the reference after shipping new weights:
``ICL_DIFFUSION_RECORD=1 python -m pytest tests/test_shipped_checkpoint.py``
"""

import json
import os
from pathlib import Path

import pytest
import torch

from icl_diffusion.checkpoint import DEFAULT_CHECKPOINT, load_pretrained
from icl_diffusion.evaluation import evaluate
from icl_diffusion.inference import impute_standardized
from priors import PriorConfig, fixed_batches

REFERENCE = Path(__file__).parent / "data" / "reference_imputation.json"

pytestmark = pytest.mark.skipif(not DEFAULT_CHECKPOINT.exists(), reason="no shipped checkpoint")


@pytest.fixture(scope="module")
def pretrained():
    return load_pretrained(DEFAULT_CHECKPOINT)


def test_shipped_checkpoint_beats_mean_imputation_on_gaussian_tables(pretrained):
    batches = fixed_batches(PriorConfig(), 2024, 2, batch_size=16, n_rows=96, n_features=6, family="gaussian")
    metrics = evaluate(pretrained.model, pretrained.diffusion, batches)
    # The exact conditional mean scores 1.0; the column mean scores gaussian_mean_ratio.
    assert metrics["gaussian_ratio"] < 0.95 * metrics["gaussian_mean_ratio"], metrics


def _fixed_table() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(7)
    n, f = 40, 5
    z = torch.randn(n, 2, generator=g)
    x = z @ torch.randn(2, f, generator=g) + 0.3 * torch.randn(n, f, generator=g)
    x[:, 4] = (x[:, 4] > 0).float()  # one binary categorical column
    known = torch.rand(n, f, generator=g) > 0.25
    is_cat = torch.tensor([False, False, False, False, True])
    n_classes = torch.tensor([0, 0, 0, 0, 2])
    return x, known, is_cat, n_classes


def test_shipped_checkpoint_matches_recorded_output(pretrained):
    x, known, is_cat, n_classes = _fixed_table()
    out = impute_standardized(pretrained.model, pretrained.diffusion, x, known, is_cat, n_classes)[0]
    assert torch.equal(out[known], x[known])
    if os.environ.get("ICL_DIFFUSION_RECORD"):
        REFERENCE.parent.mkdir(exist_ok=True)
        REFERENCE.write_text(json.dumps({"filled": out.tolist()}))
    expected = torch.tensor(json.loads(REFERENCE.read_text())["filled"])
    torch.testing.assert_close(out, expected, atol=1e-3, rtol=1e-3)
