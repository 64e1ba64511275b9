"""Samplers: the RePaint schedule, the invariants of ``sample``, and correctness against an analytic denoiser.

Rows drawn from N(0, S) have an exact denoiser: at signal level abar, with x_t = sqrt(abar) x0 + sqrt(1-abar)
eps, the posterior of x0 is Gaussian and E[eps | x_t] = sqrt(1-abar) (abar S + (1-abar) I)^-1 x_t. Given
clean known cells k, the unknown cells u are N(mu, C) with mu = S_uk S_kk^-1 x_k and C = S_uu - S_uk S_kk^-1
S_ku, and the same formula holds in the coordinates shifted by sqrt(abar) mu. A sampler fed these exact
predictors must reproduce mu and C; that is what the "analytic" tests measure.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from icl_diffusion.diffusion import MASK, GaussianDiffusion
from icl_diffusion.sampling import METHODS, count_calls, repaint_schedule, sample

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest: tiny tensors, shared 2-core machine

# --- the RePaint schedule ----------------------------------------------------------------------------------


def test_official_schedule_call_count():
    ts = repaint_schedule(250, 10, 10)
    assert count_calls(ts) == (2410, 2160)
    assert ts[0] == 249 and ts[-1] == -1


@pytest.mark.parametrize("t_T", [1, 2, 10, 50, 250])
def test_schedule_without_jumps_is_plain_descent(t_T):
    ts = repaint_schedule(t_T, 1, 1)
    assert ts == list(range(t_T - 1, -2, -1))
    assert count_calls(ts) == (t_T, 0)
    for jump_length in (1, 5, 10):  # jump_n_sample = 1 never jumps, whatever the length
        assert repaint_schedule(t_T, jump_length, 1) == ts


@pytest.mark.parametrize(
    "t_T,jl,jn", [(250, 10, 10), (100, 10, 10), (50, 5, 5), (25, 5, 5), (30, 4, 3), (7, 3, 2)]
)
def test_schedule_invariants(t_T, jl, jn):
    ts = repaint_schedule(t_T, jl, jn)
    assert ts[0] == t_T - 1 and ts[-1] == -1
    assert all(abs(a - b) == 1 for a, b in itertools.pairwise(ts))
    assert all(-1 <= t < t_T for t in ts)
    calls, jumps = count_calls(ts)
    n_jump_points = len(range(0, t_T - jl, jl))
    assert jumps == (jn - 1) * jl * n_jump_points
    assert calls == t_T + jumps  # every jump back is re-denoised
    assert calls + jumps == len(ts) - 1
    # Every original step is denoised at least once, from t_T - 1 down to 0.
    assert {a for a, b in itertools.pairwise(ts) if b < a} == set(range(t_T))


def test_schedule_rejects_bad_arguments():
    for args in [(0, 1, 1), (10, 0, 1), (10, 1, 0)]:
        with pytest.raises(ValueError):
            repaint_schedule(*args)


# --- invariants of sample() with an arbitrary (non-analytic) denoiser ------------------------------------


class ToyDenoiser:
    """A deterministic nonlinear function of (x_t, t, known) returning (numeric out, logits).

    Records every call so the tests can check what the sampler passed (finite x_t, original t, flags).
    """

    def __init__(self, n_classes: torch.Tensor, n_features: int, max_classes: int = 5, with_logits=True):
        g = torch.Generator().manual_seed(123)
        self.w = torch.randn(n_features, n_features, generator=g) / n_features**0.5
        self.wc = torch.randn(n_features, max_classes, generator=g)
        self.n_classes = n_classes  # (F,)
        self.max_classes = max_classes
        self.with_logits = with_logits
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def __call__(self, x_t, t, known):
        self.calls.append((x_t.clone(), t.clone(), known.clone()))
        h = torch.tanh(x_t @ self.w + t[:, None, None].float() / 1000)  # (B, N, F)
        if not self.with_logits:
            return h
        logits = h.unsqueeze(-1) * self.wc[None, None]  # (B, N, F, C)
        valid = torch.arange(self.max_classes) < self.n_classes.clamp(min=1)[:, None]  # (F, C)
        return h, logits.masked_fill(~valid, -1e4)


def _mixed_table(seed: int, B: int = 3, N: int = 6, Fe: int = 4):
    g = torch.Generator().manual_seed(seed)
    is_cat = torch.tensor([False, True, False, True])[:Fe]
    n_classes = torch.tensor([0, 3, 0, 4])[:Fe]
    x = torch.randn(B, N, Fe, generator=g)
    codes = torch.stack([torch.randint(0, max(int(c), 1), (B, N), generator=g) for c in n_classes], -1)
    codes = codes.float()
    x = torch.where(is_cat, codes, x)
    known = torch.rand(B, N, Fe, generator=g) < 0.6
    x_known = torch.where(known, x, torch.full_like(x, float("nan")))  # NaN at every unknown cell
    return x_known, known, is_cat, n_classes


SETTINGS = [
    {"method": "repaint", "n_steps": 8, "jump_length": 2, "jump_n_sample": 3},
    {"method": "repaint", "n_steps": 5},
    {"method": "conditional", "n_steps": 8},
    {"method": "conditional", "n_steps": 8, "jump_length": 2, "jump_n_sample": 2},
    {"method": "ddim", "n_steps": 1},
    {"method": "ddim", "n_steps": 6},
]


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_sample_invariants_mixed_table(setting, prediction):
    diffusion = GaussianDiffusion(1000, "cosine", prediction)
    x_known, known, is_cat, n_classes = _mixed_table(0)
    den = ToyDenoiser(n_classes, x_known.shape[-1])

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return sample(den, diffusion, x_known, known, generator=g, is_cat=is_cat[None, None, :], **setting)

    out = run(7)
    assert out.shape == x_known.shape
    # Known cells bit for bit (NaN at unknown cells of the input never leaks), everything finite.
    assert torch.equal(out[known], x_known[known])
    assert bool(torch.isfinite(out).all())
    # Categorical cells end as valid codes of their column.
    cat = is_cat.expand_as(out)
    codes = out[cat]
    assert torch.equal(codes, codes.round())
    assert bool((codes >= 0).all())
    assert bool((out < n_classes.float()).where(cat, torch.ones_like(cat)).all())
    # What the denoiser saw: finite inputs at every step, original t, flags per method.
    chain = diffusion.respaced(setting["n_steps"])
    calls = den.calls
    expected_calls = count_calls(
        repaint_schedule(chain.n_chain, setting.get("jump_length", 1), setting.get("jump_n_sample", 1)))[0]
    # The last step (t = 0) calls the network only while a categorical cell is still masked.
    skipped = chain.n_chain > 1 and all(int(t[0]) != 0 for _, t, _ in calls)
    assert len(calls) == expected_calls - skipped
    if chain.n_chain > 1 and not skipped:
        x_t, _, _ = calls[-1]
        assert bool(((x_t == MASK) & cat & ~known).any())
    for x_t, t, k in calls:
        assert bool(torch.isfinite(x_t).all())
        assert t.dtype == torch.long and t.shape == (x_t.shape[0],)
        assert int(t[0]) in chain.timesteps
        if setting["method"] == "repaint":
            assert not bool(k.any()), "faithful RePaint calls the denoiser unconditionally"
        else:
            assert torch.equal(k, known)
            assert torch.equal(x_t[known], x_known[known]), "conditional modes pass known cells clean"
        x_cat = x_t[cat]
        assert bool(((x_cat == MASK) | ((x_cat >= 0) & (x_cat == x_cat.round()))).all())
    assert int(calls[0][1][0]) == 999, "sampling starts at the original t = T-1"
    # Same generator seed -> identical result; another seed -> a different one (unless nothing is random).
    assert torch.equal(run(7), out)
    if setting["method"] != "ddim":
        assert not torch.equal(run(8), out)


@pytest.mark.parametrize("method", METHODS)
def test_sample_all_numeric_without_logits(method):
    diffusion = GaussianDiffusion(1000, "cosine", "x0")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 3, generator=g)
    known = torch.rand(2, 5, 3, generator=g) < 0.5
    x_known = torch.where(known, x, torch.full_like(x, float("nan")))
    den = ToyDenoiser(torch.zeros(3, dtype=torch.long), 3, with_logits=False)
    out = sample(den, diffusion, x_known, known, method=method, n_steps=4, generator=g)
    assert torch.equal(out[known], x_known[known])
    assert bool(torch.isfinite(out).all())


def test_sample_refuses_categorical_cells_without_logits():
    """Unknown categorical cells need logits: without them they would stay masked (a silent wrong answer)."""
    x = torch.zeros(1, 4, 2)
    known = torch.ones(1, 4, 2, dtype=torch.bool)
    known[0, 1, 1] = False
    is_cat = torch.tensor([False, True])[None, None, :]
    den = ToyDenoiser(torch.zeros(2, dtype=torch.long), 2, with_logits=False)
    with pytest.raises(ValueError, match="no logits"):
        sample(den, GaussianDiffusion(), x, known, n_steps=2, is_cat=is_cat)
    known[0, 1, 1] = True  # categorical column fully known: fine
    assert torch.equal(sample(den, GaussianDiffusion(), x, known, n_steps=2, is_cat=is_cat), x)


def test_sample_rejects_unknown_method():
    x = torch.zeros(1, 2, 2)
    with pytest.raises(ValueError, match="method"):
        sample(lambda x, t, k: x, GaussianDiffusion(), x, x.bool(), method="ddpm")


def test_sample_nothing_known_and_everything_known():
    diffusion = GaussianDiffusion(1000, "cosine", "eps")
    den = ToyDenoiser(torch.zeros(3, dtype=torch.long), 3, with_logits=False)
    x = torch.randn(2, 4, 3)
    all_known = torch.ones_like(x, dtype=torch.bool)
    for method in METHODS:
        assert torch.equal(sample(den, diffusion, x, all_known, method=method, n_steps=3), x)
        out = sample(den, diffusion, x, ~all_known, method=method, n_steps=3)
        assert bool(torch.isfinite(out).all())


# --- correctness against the exact denoiser of a Gaussian table ------------------------------------------

CORR = torch.tensor(
    [
        [1.00, 0.85, 0.60, 0.40],
        [0.85, 1.00, 0.70, 0.55],
        [0.60, 0.70, 1.00, 0.80],
        [0.40, 0.55, 0.80, 1.00],
    ],
    dtype=torch.float64,
)
SCALE = torch.tensor([1.0, 1.5, 0.7, 1.2], dtype=torch.float64)
COV = CORR * SCALE[:, None] * SCALE[None, :]
# Known patterns (one row each) with their observed values.
PATTERNS = [
    (torch.tensor([True, False, False, True]), torch.tensor([1.2, 0.0, 0.0, -0.8])),
    (torch.tensor([True, True, False, False]), torch.tensor([1.5, 1.0, 0.0, 0.0])),
    (torch.tensor([False, False, True, False]), torch.tensor([0.0, 0.0, -1.2, 0.0])),
]


def _regression(cov: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A = S_uk S_kk^-1 (U, K), C = S_uu - A S_ku (U, U)) of one known pattern (F,) bool."""
    u, k = ~known, known
    s_uu, s_uk, s_kk = cov[u][:, u], cov[u][:, k], cov[k][:, k]
    if not bool(k.any()):
        return torch.zeros(int(u.sum()), 0, dtype=cov.dtype), s_uu
    a = torch.linalg.solve(s_kk, s_uk.T).T
    return a, s_uu - a @ s_uk.T


def conditional_gaussian(cov: torch.Tensor, known: torch.Tensor, x: torch.Tensor):
    """Mean (R, U) and covariance (U, U) of the unknown cells given the known ones; x: (R, F), one pattern."""
    a, c = _regression(cov, known)
    return x[:, known].to(cov.dtype) @ a.T, c


class GaussianDenoiser:
    """The exact denoiser of rows ~ N(0, cov) in any parameterization.

    Cells flagged known are taken as clean observations (the conditional predictor); with no known flags
    (RePaint) this is the unconditional predictor. Rows with different known patterns are handled per
    pattern. ``t`` is read as the ORIGINAL step index, as the sampler contract says.
    """

    def __init__(self, cov: torch.Tensor, diffusion: GaussianDiffusion):
        self.cov, self.diffusion = cov, diffusion
        self.abar = diffusion.alphas_cumprod.double()
        self.ts: list[int] = []
        self._patterns: dict[int, tuple] = {}

    def _pattern(self, code: int, fe: int):
        # Per known pattern, once: regression A = S_uk S_kk^-1, eigendecomposition of C = S_u|k.
        if code not in self._patterns:
            known = torch.tensor([bool(code >> f & 1) for f in range(fe)])
            u, k = (~known).nonzero().squeeze(1), known.nonzero().squeeze(1)
            a, c = _regression(self.cov, known)
            lam, q = torch.linalg.eigh(c)
            self._patterns[code] = (u, k, a, c, lam, q)
        return self._patterns[code]

    def posterior(self, x_t, t, known):
        """(E[x0 | x_t, x_known], E[eps | x_t, x_known], abar) at unknown cells, float64; 0 at known cells."""
        B, N, Fe = x_t.shape
        assert bool((t == t[0]).all())
        self.ts.append(int(t[0]))
        ab = float(self.abar[t[0]])
        rows = x_t.double().reshape(B * N, Fe)
        codes = (known.reshape(B * N, Fe).long() << torch.arange(Fe)).sum(1)  # pattern id per row
        x0, eps = torch.zeros_like(rows), torch.zeros_like(rows)
        for code in codes.unique().tolist():
            u, k, a, c, lam, q = self._pattern(code, Fe)
            idx = (codes == code).nonzero()  # (R, 1)
            r = rows[idx.squeeze(1)]
            mu = r[:, k] @ a.T  # (R, U) conditional mean mu_u|k per row
            m_inv = q @ torch.diag(1 / (ab * lam + 1 - ab)) @ q.T  # (abar C + (1-abar) I)^-1
            sol = (r[:, u] - ab**0.5 * mu) @ m_inv
            x0[idx, u] = mu + ab**0.5 * sol @ c
            eps[idx, u] = (1 - ab) ** 0.5 * sol
        return x0.view(B, N, Fe), eps.view(B, N, Fe), ab

    def __call__(self, x_t, t, known):
        x0, eps, ab = self.posterior(x_t, t, known)
        pred = self.diffusion.prediction
        out = x0 if pred == "x0" else eps if pred == "eps" else ab**0.5 * eps - (1 - ab) ** 0.5 * x0
        return out.to(x_t.dtype)


def _gaussian_problem(n_samples: int):
    """x_known (B, P, F) with one row per known pattern, repeated over B samples; and the exact answers."""
    known = torch.stack([p for p, _ in PATTERNS])  # (P, F)
    values = torch.stack([v for _, v in PATTERNS]).float()
    x_known = torch.where(known, values, torch.full_like(values, float("nan")))
    exact = [conditional_gaussian(COV, p, v[None].double()) for p, v in PATTERNS]
    return (x_known[None].expand(n_samples, -1, -1).contiguous(), known[None].expand(n_samples, -1, -1),
            [(m[0], c) for m, c in exact])


def _errors(out: torch.Tensor, exact) -> tuple[float, float]:
    """Mean over patterns of (max |mean error|, max |cov error|) of the unknown cells."""
    mean_err, cov_err = [], []
    for r, ((pattern, _), (mu, c)) in enumerate(zip(PATTERNS, exact)):
        s = out[:, r, ~pattern].double()  # (B, U)
        mean_err.append(float((s.mean(0) - mu).abs().max()))
        cov_err.append(float((torch.cov(s.T).reshape(c.shape) - c).abs().max()))
    return sum(mean_err) / len(mean_err), sum(cov_err) / len(cov_err)


def _marginal_errors(exact) -> tuple[float, float]:
    """The same errors for ignoring the known cells (the unconditional N(0, S_uu)): the scale of failure."""
    mean_err = [float(mu.abs().max()) for _, (mu, _) in zip(PATTERNS, exact)]
    cov_err = [float((COV[~p][:, ~p] - c).abs().max()) for (p, _), (_, c) in zip(PATTERNS, exact)]
    return sum(mean_err) / len(mean_err), sum(cov_err) / len(cov_err)


def _run(method, prediction, n_steps, n_samples=5000, seed=0, den=None, **jumps):
    diffusion = GaussianDiffusion(1000, "cosine", prediction)
    x_known, known, exact = _gaussian_problem(n_samples)
    den = den or GaussianDenoiser(COV, diffusion)
    g = torch.Generator().manual_seed(seed)
    out = sample(den, diffusion, x_known, known, method=method, n_steps=n_steps, generator=g, **jumps)
    assert torch.equal(out[known], x_known[known])
    assert bool(torch.isfinite(out).all())
    return out, exact, den


def test_gaussian_denoiser_is_exact():
    # Self-check of the helper: the exact posterior mean has the smallest squared error among functions of
    # (x_t, x_known); a least-squares fit on the same inputs over many joint draws must not beat it.
    diffusion = GaussianDiffusion(1000, "cosine", "x0")
    den = GaussianDenoiser(COV, diffusion)
    g = torch.Generator().manual_seed(0)
    n, t = 200_000, 600
    x0 = torch.randn(n, 4, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(COV).T
    abar = float(diffusion.alphas_cumprod[t])
    eps = torch.randn(n, 4, generator=g, dtype=torch.float64)
    x_t = abar**0.5 * x0 + (1 - abar) ** 0.5 * eps
    known = torch.tensor([True, False, False, True])
    x_in = torch.where(known, x0, x_t)  # known cells clean, unknown noised
    pred_x0, pred_eps, _ = den.posterior(x_in[None], torch.tensor([t]), known.expand(1, n, 4))
    u = ~known
    resid = (x0[:, u] - pred_x0[0][:, u]).pow(2).mean()
    design = torch.cat([x_in, torch.ones(n, 1, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(design, x0[:, u]).solution
    resid_ls = (x0[:, u] - design @ coef).pow(2).mean()
    assert float(resid) <= float(resid_ls) * 1.001
    assert float(resid) >= float(resid_ls) * 0.99
    # eps and x0 agree: x_t = sqrt(abar) x0_hat + sqrt(1-abar) eps_hat on unknown cells.
    recon = abar**0.5 * pred_x0[0][:, u] + (1 - abar) ** 0.5 * pred_eps[0][:, u]
    torch.testing.assert_close(recon, x_t[:, u])
    # With nothing known it is the unconditional predictor sqrt(1-abar) (abar S + (1-abar) I)^-1 x_t.
    _, eps_u, _ = den.posterior(x_t[None], torch.tensor([t]), torch.zeros(1, n, 4, dtype=torch.bool))
    ref = (1 - abar) ** 0.5 * torch.linalg.solve(abar * COV + (1 - abar) * torch.eye(4), x_t.T).T
    torch.testing.assert_close(eps_u[0], ref)


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_conditional_sampler_reproduces_exact_conditional(prediction):
    # 5,000 samples: s.e. of a conditional mean <= 0.013, of a covariance entry <= 0.025.
    out, exact, den = _run("conditional", prediction, n_steps=100, n_samples=5000)
    mean_err, cov_err = _errors(out, exact)
    print(f"\nconditional n_steps=100 ({prediction}): mean err {mean_err:.4f}, cov err {cov_err:.4f}")
    # Every step but the last (t = 0: x0 is read off x_t there, the table has no categorical cell).
    assert den.ts == GaussianDiffusion().respaced(100).timesteps[:0:-1]
    assert mean_err < 0.03
    assert cov_err < 0.09
    # The three parameterizations of the same exact denoiser walk the same path from the same noise.
    ref, _, _ = _run("conditional", "x0", n_steps=100, n_samples=5000)
    torch.testing.assert_close(out, ref, atol=2e-3, rtol=0)


def test_shared_first_call_keeps_the_exact_conditional():
    # At t = T the input carries no signal: the exact x0 from x_T at its mean is the conditional mean, the
    # same as from any x_T, so the draws keep the exact distribution; one call of one sample serves all.
    seen = []

    class Recording(GaussianDenoiser):
        def __call__(self, x_t, t, known):
            seen.append(x_t.shape[0])
            return super().__call__(x_t, t, known)

    diffusion = GaussianDiffusion(1000, "cosine", "x0")
    out, exact, den = _run("conditional", "x0", n_steps=100, share_first_call=True,
                           den=Recording(COV, diffusion))
    mean_err, cov_err = _errors(out, exact)
    assert seen[0] == 1 and set(seen[1:]) == {5000} and den.ts[0] == 999
    assert mean_err < 0.03 and cov_err < 0.09
    with pytest.raises(ValueError, match="share_first_call"):
        _run("repaint", "x0", n_steps=5, n_samples=2, share_first_call=True)


def test_last_step_never_calls_the_network_on_numeric_tables():
    diffusion = GaussianDiffusion(1000, "cosine", "x0")
    den = ToyDenoiser(torch.zeros(3, dtype=torch.long), 3, with_logits=False)
    x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(2))
    known = x > 0
    for method in METHODS:
        den.calls.clear()
        sample(den, diffusion, torch.where(known, x, torch.nan), known, method=method, n_steps=4)
        assert [int(t[0]) for _, t, _ in den.calls] == [999, 666, 333]


def test_conditional_sampler_converges_with_steps():
    # E[x0 | x_t] is exact at every step, so the mean is right at any step count; the spread is not:
    # ancestral sampling with the posterior variance beta~ (variance_mix 0) is under-dispersed by O(1 / n_steps).
    errs = {}
    for n_steps in (10, 25, 250):
        out, exact, _ = _run("conditional", "x0", n_steps=n_steps, n_samples=10_000, variance_mix=0.0)
        errs[n_steps] = _errors(out, exact)
        print(f"\nconditional n_steps={n_steps} (x0): mean err {errs[n_steps][0]:.4f}, "
              f"cov err {errs[n_steps][1]:.4f}", end="")
        if n_steps == 10:
            for r, ((pattern, _), (_, c)) in enumerate(zip(PATTERNS, exact)):
                var = out[:, r, ~pattern].double().var(0)
                assert bool((var < torch.diagonal(c)).all()), "few ancestral steps shrink the variance"
    assert all(m < 0.03 for m, _ in errs.values())
    assert errs[10][1] > errs[25][1] > errs[250][1]
    assert errs[250][1] < 0.035


def test_ddim_sampler_reproduces_exact_conditional():
    # Deterministic DDIM (the probability-flow ODE) with the exact score of a Gaussian also maps the start
    # noise onto N(mu, C) as the step count grows.
    out, exact, _ = _run("ddim", "v", n_steps=50, n_samples=10_000)
    mean_err, cov_err = _errors(out, exact)
    print(f"\nddim n_steps=50 (v): mean err {mean_err:.4f}, cov err {cov_err:.4f}")
    assert mean_err < 0.03
    assert cov_err < 0.06


def test_ddim_one_step_with_exact_x0_is_exact_posterior_mean():
    x_known, known, exact = _gaussian_problem(3)
    mean = torch.zeros(x_known.shape, dtype=torch.float64)
    for r, ((pattern, _), (mu, _)) in enumerate(zip(PATTERNS, exact)):
        mean[:, r, ~pattern] = mu
    seen = []

    def x0_predictor(x_t, t, k):
        seen.append(int(t[0]))
        return mean.float()

    g = torch.Generator().manual_seed(0)
    out = sample(x0_predictor, GaussianDiffusion(1000, "cosine", "x0"), x_known, known, method="ddim",
                 n_steps=1, generator=g)
    assert seen == [999], "the one-call point estimate is the x0 prediction at t = T-1"
    assert torch.equal(out[~known], mean.float()[~known])
    assert torch.equal(out[known], x_known[known])


def _repaint_expected_mean(n_steps: int, jump_length: int = 1, jump_n_sample: int = 1) -> torch.Tensor:
    """E[RePaint output] (P, F) for the exact unconditional denoiser, by propagating means (float64).

    Everything is linear-Gaussian, so the mean follows the sampler's recursion with the noise dropped:
    blend sqrt(abar_i) x_known, take E[x0 | x_i] = sqrt(abar) S (abar S + (1-abar) I)^-1 x_i, step to the
    posterior mean (Ho et al. eq. 7); a jump back scales by sqrt(1 - beta). Independent of ``sample``.
    """
    abar_full = GaussianDiffusion(1000, "cosine").alphas_cumprod.double()
    ts = GaussianDiffusion(1000).respaced(n_steps).timesteps
    abar = abar_full[ts]
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    known = torch.stack([p for p, _ in PATTERNS])  # (P, F)
    values = torch.stack([v for _, v in PATTERNS]).double()
    m = torch.zeros_like(values)
    schedule = repaint_schedule(len(ts), jump_length, jump_n_sample)
    for a, b in itertools.pairwise(schedule):
        if b > a:
            m = (abar[b] / abar_prev[b]).sqrt() * m
            continue
        ab, ab_prev = abar[a], abar_prev[a]
        beta = 1 - ab / ab_prev
        m = torch.where(known, ab.sqrt() * values, m)
        x0 = ab.sqrt() * torch.linalg.solve(ab * COV + (1 - ab) * torch.eye(4, dtype=COV.dtype), m.T).T @ COV
        m = beta * ab_prev.sqrt() / (1 - ab) * x0 + (1 - ab_prev) * (1 - beta).sqrt() / (1 - ab) * m
    return m


def test_repaint_with_resampling_approaches_the_conditional():
    # Faithful RePaint with the UNconditional predictor: without resampling, the known cells reach the unknown
    # ones only through independently re-noised copies, which pulls the result toward the marginal N(0, S_uu);
    # resampling (jumps) harmonizes. Errors are averaged over the three known patterns, 3,000 samples each.
    n = 2000
    marginal = _marginal_errors(_gaussian_problem(1)[2])
    print(f"\nignoring the known cells: mean err {marginal[0]:.4f}, cov err {marginal[1]:.4f}")
    results, bias = {}, {}
    for name, kw in [
        ("50 steps, no jumps", {"n_steps": 50}),
        ("50 steps, jumps 5x5", {"n_steps": 50, "jump_length": 5, "jump_n_sample": 5}),
        ("100 steps, no jumps", {"n_steps": 100}),
        ("100 steps, jumps 10x10", {"n_steps": 100, "jump_length": 10, "jump_n_sample": 10}),
    ]:
        out, exact, _den = _run("repaint", "eps", n_samples=n, seed=len(results), **kw)
        results[name] = _errors(out, exact)
        # The sampler's Monte Carlo mean is the mean its recursion implies (s.e. <= 0.02): RePaint is
        # implemented faithfully, and its remaining error is RePaint's own bias, not sampling noise.
        expected = _repaint_expected_mean(**kw)
        for r, ((pattern, _), (mu, _)) in enumerate(zip(PATTERNS, exact)):
            torch.testing.assert_close(out[:, r, ~pattern].double().mean(0), expected[r, ~pattern],
                                       atol=0.07, rtol=0)
        bias[name] = sum(float((expected[r, ~p] - mu).abs().max())
                         for r, ((p, _), (mu, _)) in enumerate(zip(PATTERNS, exact))) / len(PATTERNS)
        print(f"repaint {name}: mean err {results[name][0]:.4f} (exact bias {bias[name]:.4f}), "
              f"cov err {results[name][1]:.4f}")
    for steps, jumps in [("50 steps", "jumps 5x5"), ("100 steps", "jumps 10x10")]:
        plain, jump = f"{steps}, no jumps", f"{steps}, {jumps}"
        assert bias[jump] < 0.7 * bias[plain]
        assert results[jump][0] < 0.7 * results[plain][0] and results[jump][1] < 0.7 * results[plain][1]
    plain, best = results["100 steps, no jumps"], results["100 steps, jumps 10x10"]
    assert plain[0] < marginal[0] and best[0] < 0.5 * marginal[0] and best[1] < 0.5 * marginal[1]
