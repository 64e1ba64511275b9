"""Pinned outputs of the shipped checkpoint, per sampling method, through the estimator users call.

These catch any change of the numbers (a refactor of the inference engine, a dependency upgrade), not whether
the numbers are good: that is test_shipped_quality.py, which never compares with recorded outputs. Every test
here carries the ``reference`` marker, so ``pytest -m "not reference"`` runs the quality tests alone.

The reference is written only by ``python tests/record_reference.py`` (after shipping new weights), never by
a test run. It covers: the one-call point estimate (numeric and categorical cells), two conditional-sampler
draws (raw) and three with the checkpoint's draw settings, one RePaint draw of a 40 x 5 mixed table, and DiffusionClassifier's probabilities.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from record_reference import CASES, run_case

from icl_diffusion.checkpoint import DEFAULT_CHECKPOINT

REFERENCE = Path(__file__).parent / "data" / "reference_outputs.json"

pytestmark = [pytest.mark.reference, pytest.mark.usefixtures("single_thread"),
              pytest.mark.skipif(not DEFAULT_CHECKPOINT.exists(), reason="no shipped checkpoint")]


@pytest.mark.parametrize("case", sorted(CASES))
def test_shipped_checkpoint_matches_recorded_output(case):
    out, observed = run_case(case)
    expected = np.array(json.loads(REFERENCE.read_text())[case])
    np.testing.assert_allclose(out, expected, atol=1e-3, rtol=1e-3)
    if observed is not None:  # observed cells come back bit for bit
        assert np.all(out[..., observed[0], observed[1]] == observed[2])
