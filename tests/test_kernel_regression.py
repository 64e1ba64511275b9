"""The kernel ridge regression the point estimate's blend may take (icl_diffusion.kernel_regression)."""

import torch

from icl_diffusion.kernel_regression import MIN_ROWS, kernel_estimates


def _table(n=400, seed=0):
    """a uniform; b = sin(2a) (no linear relation with a); c = a / 2 + noise; 30% of b unknown."""
    g = torch.Generator().manual_seed(seed)
    a = 4 * torch.rand(n, generator=g, dtype=torch.float64) - 2
    x = torch.stack([a, torch.sin(2 * a) + 0.05 * torch.randn(n, generator=g, dtype=torch.float64),
                     a / 2 + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)], 1)
    x = (x - x.mean(0)) / x.std(0)
    known = torch.ones_like(x, dtype=torch.bool)
    known[:, 1] = torch.rand(n, generator=g) > 0.3
    return x, known


def test_it_learns_a_nonlinear_column_and_keeps_known_cells():
    x, known = _table()
    filled = torch.where(known, x, 0.0)  # what a linear fit gives here: about the column mean
    out = kernel_estimates(filled, known, torch.zeros(3, dtype=torch.bool), torch.arange(len(x)))
    hidden = ~known[:, 1]
    rmse = float((out[hidden, 1] - x[hidden, 1]).square().mean().sqrt())
    assert rmse < 0.3, rmse  # the column mean: ~1
    assert torch.equal(out[known], x[known])
    assert torch.equal(out, kernel_estimates(filled, known, torch.zeros(3, dtype=torch.bool), torch.arange(len(x))))


def test_it_fits_on_the_key_rows_only_and_leaves_categorical_and_thin_columns_alone():
    x, known = _table()
    filled = torch.where(known, x, 0.0)
    keys = torch.arange(200)
    out = kernel_estimates(filled, known, torch.zeros(3, dtype=torch.bool), keys)
    moved = x.clone()
    moved[200:] = torch.where(known[200:], -x[200:], 0.0)  # non-key rows' own values changed
    out2 = kernel_estimates(torch.where(known, moved, 0.0), known, torch.zeros(3, dtype=torch.bool), keys)
    assert torch.allclose(out[:200, 1], out2[:200, 1])  # key rows' estimates: only key rows fitted them
    cat = torch.tensor([False, True, False])
    assert torch.equal(kernel_estimates(filled, known, cat, keys)[:, 1], filled[:, 1])
    few = torch.arange(MIN_ROWS - 1)
    assert torch.equal(kernel_estimates(filled, known, torch.zeros(3, dtype=torch.bool), few), filled)
