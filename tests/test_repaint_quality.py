"""RePaint draws against the exact conditional distribution on a Gaussian table, through the estimator.

Faithful RePaint (known cells re-noised and blended in, the denoiser told nothing is known) draws from the
right conditional only if its denoiser is a joint model of the table. With the exact denoiser of a Gaussian
fitted to the table (``baselines.noisy_gaussian``) it does, which checks the sampler and the noisy-table
feature together. The shipped network does not yet (issue 14): that test is an expected failure, strict, so
that it turns into a failure to notice when a checkpoint that passes ships.
"""

from __future__ import annotations

import numpy as np
import pytest
from quality import exact_conditional, gaussian_table

from icl_diffusion import DiffusionImputer
from icl_diffusion.baselines import noisy_gaussian
from icl_diffusion.checkpoint import load_pretrained

pytestmark = pytest.mark.usefixtures("single_thread")

N_ROWS, N_DRAWS = 300, 8
REPAINT = dict(method="repaint", n_steps=50, jump_length=5, jump_n_sample=5)


def _draw_errors(pretrained):
    """(|mean of the draws - exact mean| / exact sd, draws' sd / exact sd), averaged over missing cells."""
    x, missing, cov = gaussian_table(N_ROWS)
    draws = DiffusionImputer(checkpoint=pretrained, device="cpu", random_state=0, **REPAINT).fit(
        np.where(missing, np.nan, x)).sample(np.where(missing, np.nan, x), n_imputations=N_DRAWS)
    draws = np.stack(draws)[:, missing]
    mean, sd = (a[missing] for a in exact_conditional(x, missing, cov))
    bias = np.abs(draws.mean(0) - mean) / sd
    # With 8 draws the mean of exact draws sits ~1/sqrt(8) = 0.35 sd from the exact mean (|z| ~ 0.28). Measured
    # (session 5): the exact Gaussian denoiser 0.42 and spread 1.04 (50 steps leave RePaint a little short of
    # harmonized); the shipped network 0.70 and 0.92; the closed-form conditional mean 0.53 and 0.03.
    return float(bias.mean()), float(draws.std(0, ddof=1).mean() / sd.mean())


def _check(pretrained):
    bias, spread = _draw_errors(pretrained)
    assert bias < 0.5, f"RePaint draws' mean is {bias:.2f} exact sd from the exact conditional mean"
    assert 0.7 < spread < 1.3, f"RePaint draws' spread is {spread:.2f}x the exact conditional sd"


def test_repaint_with_the_exact_gaussian_denoiser_draws_from_the_conditional():
    _check(noisy_gaussian(load_pretrained()))


@pytest.mark.xfail(strict=True, reason="issue 14: the shipped network's unconditional mode is no joint model yet")
def test_repaint_with_the_shipped_network_draws_from_the_conditional():
    _check(load_pretrained())
