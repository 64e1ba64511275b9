"""Experiment (session 27): the kernel input's bandwidths and features (``kernel_regression.BANDWIDTH_SCALES``,
``FEATURES``), patched for one run; em_iters.py's modes at the engine's EM settings.

    python benchmarks/results/kernel_bandwidth.py SCALES FEATURES grid SEEDS OUT_CSV
    python benchmarks/results/kernel_bandwidth.py SCALES FEATURES screen SECTIONS OUT_DIR

SCALES: comma-separated multiples of the median squared distance (``1`` is session 26's kernel). Runs at commit
1de3166 (``git checkout 1de3166``), whose kernel_regression.py has ``BANDWIDTH_SCALES``; not kept after it (level on
the real grid). benchmarks/results/imputation.md, session 27, has the runs.
"""

import sys

sys.path.insert(0, "benchmarks/results")
sys.path.insert(0, "benchmarks")
import em_iters

from icl_diffusion import gaussian_feature, kernel_regression

if not hasattr(kernel_regression, "BANDWIDTH_SCALES"):  # elsewhere every variant would silently run session 26's
    raise SystemExit("kernel_bandwidth.py runs at commit 1de3166 only (git checkout 1de3166)")

if __name__ == "__main__":
    scales, features, mode, what, out = sys.argv[1:]
    kernel_regression.BANDWIDTH_SCALES = tuple(float(s) for s in scales.split(","))
    kernel_regression.FEATURES = int(features)
    em_iters.main([mode, str(gaussian_feature.EM_MAX_ITERS), str(gaussian_feature.EM_TOL), what, out])
