"""The spectrum clip of the Gaussian feature's covariance (gaussian_feature.clip_spectrum): above 32 x 32 on
CUDA it avoids torch.linalg.eigh (whose CUDA batch loops one matrix at a time there) and gives the same
numbers as the eigh route, which the CPU keeps."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from icl_diffusion import gaussian_feature
from icl_diffusion.gaussian_feature import cell_estimates, clip_spectrum, eigh_batches, positive_part
from icl_diffusion.scaling import standardize
from priors import PriorConfig, sample_batch

pytestmark = pytest.mark.usefixtures("single_thread")


class Ops(TorchDispatchMode):
    """The names of the aten operations run inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def _wide_tables(seed: int) -> dict:
    """A batch whose one-hot expanded width is well above 32, with categorical columns and many unknown
    cells: pairwise covariances that are often indefinite, so the clip has work to do."""
    cfg = PriorConfig(p_has_categorical=1.0, missing_rate=(0.3, 0.8))
    return sample_batch(cfg, torch.Generator().manual_seed(seed), batch_size=6, n_rows=48, n_features=40)


def test_dispatch_avoids_eigh_only_where_cuda_loops():
    assert eigh_batches(torch.zeros(4, 64, 64))  # the CPU: LAPACK, no cliff, the recorded bits
    assert eigh_batches(SimpleNamespace(device=torch.device("cuda"), shape=(4, 32, 32)))
    assert not eigh_batches(SimpleNamespace(device=torch.device("cuda"), shape=(4, 33, 33)))


def test_positive_part_within_its_error_bound():
    """Eigenvalues of both signs spread over 15 decades: the worst error stays under 0.25 * 1.5^-k b."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(16, 48, 48, dtype=torch.float64, generator=g))
    x = torch.exp(torch.empty(16, 48, dtype=torch.float64).uniform_(-35, 0, generator=g))
    x = torch.where(torch.rand(16, 48, generator=g) < 0.5, -x, x)
    m = (q * x[:, None, :]) @ q.mT
    exact = (q * x.clamp(min=0)[:, None, :]) @ q.mT
    bound = torch.minimum(torch.linalg.matrix_norm(m), m.abs().sum(-2).amax(-1))
    err = (positive_part(m) - exact).abs().amax((-2, -1)) / bound
    assert float(err.max()) < 0.25 * 1.5 ** -gaussian_feature.SIGN_ITERATIONS


def test_sign_route_equals_eigh_route_and_reads_nothing():
    """On clipped covariances of wide tables the two routes agree to 1e-10 of the largest entry; the sign
    route runs no eigh and no operation that would make the host wait on CUDA."""
    for seed in range(3):
        b = _wide_tables(seed)
        x0, _, _ = standardize(b["x"], b["known"], b["is_cat"])
        layout = gaussian_feature.one_hot_layout(b["is_cat"], b["n_classes"])
        x_e, known_e = gaussian_feature.expand_table(x0, b["known"], layout)
        no_cat = torch.zeros(layout["src"].shape, dtype=torch.bool)
        raw = gaussian_feature.table_covariance(x_e, known_e, no_cat)  # already clipped: clip it again below
        cov = raw - 0.3 * raw.diagonal(dim1=1, dim2=2).mean(1)[:, None, None] * torch.eye(raw.shape[-1])
        floor = 1e-3 * cov.diagonal(dim1=1, dim2=2).mean(1, keepdim=True)
        assert raw.shape[-1] > 32 and bool((torch.linalg.eigvalsh(cov) < floor).any())
        with Ops() as ops:
            by_sign = clip_spectrum(cov, floor, by_eigh=False)
        assert not {"_linalg_eigh", "_local_scalar_dense", "_linalg_check_errors", "nonzero"} & ops.names
        by_eigh = clip_spectrum(cov, floor, by_eigh=True)
        assert (by_sign - by_eigh).abs().max() < 1e-10 * by_eigh.abs().max()


def test_cell_estimates_unchanged_by_the_route(monkeypatch):
    """The whole closed-form feature (fit with EM, numeric estimates, level probabilities) on wide tables is
    the same whichever route clips the spectrum."""
    b = _wide_tables(7)
    x0, _, _ = standardize(b["x"], b["known"], b["is_cat"])
    args = (x0, b["known"], b["is_cat"], b["n_classes"], max(2, int(b["n_classes"].max())))
    gauss, probs, (mean, cov) = cell_estimates(*args, em_iters=2)
    monkeypatch.setattr(gaussian_feature, "eigh_batches", lambda cov: False)
    gauss2, probs2, (mean2, cov2) = cell_estimates(*args, em_iters=2)
    assert cov.shape[-1] > 32
    torch.testing.assert_close(cov2, cov, rtol=0, atol=1e-10)
    torch.testing.assert_close(mean2, mean, rtol=0, atol=1e-10)
    torch.testing.assert_close(gauss2, gauss, rtol=0, atol=1e-5)
    torch.testing.assert_close(probs2, probs, rtol=0, atol=1e-5)
