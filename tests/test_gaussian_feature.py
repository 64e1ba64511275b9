import pytest
import torch

from icl_diffusion.gaussian_feature import (
    EM_MAX_ITERS,
    EM_TOL,
    _cholesky_solve,
    _conditional,
    _em,
    _inverse_by_solves,
    _observed,
    cell_estimates,
    converged_em,
    gaussian_estimate,
    table_covariance,
    table_gaussian,
)
from icl_diffusion.scaling import standardize


def _gaussian_table(n=2000, f=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(f, f, generator=g)
    cov = a @ a.T + 0.1 * torch.eye(f)
    sd = cov.diag().sqrt()
    cov = cov / sd[:, None] / sd[None, :]  # unit variances: the table is standardized
    x = torch.randn(n, f, generator=g) @ torch.linalg.cholesky(cov).T
    return x[None], cov.double()


def test_estimate_matches_exact_conditional_mean_with_many_rows():
    x, cov = _gaussian_table()
    known = torch.ones_like(x, dtype=torch.bool)
    known[0, :200, 0] = False  # hide column 0 in 200 rows, the rest is complete
    is_cat = torch.zeros(1, 4, dtype=torch.bool)
    est = gaussian_estimate(x, known, is_cat, table_covariance(x, known, is_cat))
    k = [1, 2, 3]
    exact = (cov[0, k] @ torch.linalg.inv(cov[k][:, k]) @ x[0, :200, k].double().T).float()
    # The covariance is estimated from 2,000 rows and shrunk 5%: close to exact, not equal.
    assert torch.corrcoef(torch.stack([est[0, :200, 0], exact]))[0, 1] > 0.99
    truth = x[0, :200, 0]
    assert (est[0, :200, 0] - truth).pow(2).mean() < 1.05 * (exact - truth).pow(2).mean()
    assert torch.equal(est[known], x[known])  # known numeric cells come back as they are


def test_covariance_is_positive_definite_and_ignores_categorical_and_non_key_rows():
    x, _ = _gaussian_table(n=12, f=6, seed=1)
    known = torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) > 0.6  # sparse: indefinite pairs
    is_cat = torch.tensor([[False, False, False, False, False, True]])
    key = torch.ones(1, 12, dtype=torch.bool)
    key[0, -3:] = False
    cov = table_covariance(x, known, is_cat, key)
    assert torch.linalg.eigvalsh(cov).min() > 0
    assert torch.all(cov[0, 5, :5] == 0)
    x2 = x.clone()
    x2[0, -3:] = 100.0  # values in non-key rows do not change the covariance
    assert torch.equal(cov, table_covariance(x2, known, is_cat, key))
    est = gaussian_estimate(x, known, is_cat, cov)
    assert torch.isfinite(est).all() and torch.all(est[0, :, 5] == 0)


def test_nothing_known_gives_zero_estimate():
    x, _ = _gaussian_table(n=10, f=3)
    known = torch.zeros_like(x, dtype=torch.bool)
    is_cat = torch.zeros(1, 3, dtype=torch.bool)
    est = gaussian_estimate(x, known, is_cat, table_covariance(x, known, is_cat))
    assert torch.equal(est, torch.zeros_like(est))


def _mar_table(n=300, f=5, seed=3):
    """A Gaussian table where column 0 is hidden when column 1 is high (MAR): pairwise estimates are biased."""
    x, cov = _gaussian_table(n=n, f=f, seed=seed)
    known = torch.ones_like(x, dtype=torch.bool)
    known[0, :, 0] = x[0, :, 1] < 0.3
    x = standardize(x, known, torch.zeros(1, f, dtype=torch.bool))[0]  # as the model sees it
    return x, cov, known


def test_em_fit_beats_pairwise_under_mar_and_keeps_known_cells():
    x, _cov, known = _mar_table()
    is_cat = torch.zeros(1, x.shape[2], dtype=torch.bool)
    hidden = ~known[0, :, 0]
    errors = {}
    for iters in (0, 10):
        mean, fit = table_gaussian(x, known, is_cat, em_iters=iters)
        assert torch.linalg.eigvalsh(fit).min() > 0
        est = gaussian_estimate(x, known, is_cat, fit, mean)
        assert torch.equal(est[known], x[known])
        errors[iters] = float((est[0, hidden, 0] - x[0, hidden, 0]).pow(2).mean())
    # EM recovers the shifted mean of the hidden cells: clearly better than pairwise, which assumes mean 0.
    assert errors[10] < 0.8 * errors[0]


def test_em_fit_with_zero_iterations_is_the_pairwise_fit():
    x, _, known = _mar_table(n=40)
    is_cat = torch.zeros(1, x.shape[2], dtype=torch.bool)
    mean, cov = table_gaussian(x, known, is_cat)
    assert torch.equal(cov, table_covariance(x, known, is_cat)) and torch.equal(mean, torch.zeros_like(mean))


def test_em_with_a_tolerance_stops_at_its_fixed_point():
    """``em_tol``: EM stops once an iteration moves no entry by more than it, short of ``em_iters``; what it
    stops at is the fixed point that many more iterations reach, and a loose tolerance stops after one."""
    x, _, known = _mar_table()
    is_cat = torch.zeros(1, x.shape[2], dtype=torch.bool)
    far_mean, far_cov = table_gaussian(x, known, is_cat, em_iters=400)
    mean, cov = table_gaussian(x, known, is_cat, em_iters=400, em_tol=1e-6)
    assert (cov - far_cov).abs().max() < 1e-4 and (mean - far_mean).abs().max() < 1e-4
    _, ten_cov = table_gaussian(x, known, is_cat, em_iters=10)
    assert (ten_cov - far_cov).abs().max() > 1e-3  # ten iterations are not there yet on this table
    one = table_gaussian(x, known, is_cat, em_iters=1)
    loose = table_gaussian(x, known, is_cat, em_iters=400, em_tol=10.0)
    assert all(torch.equal(a, b) for a, b in zip(one, loose))


def test_inference_runs_em_to_convergence_for_networks_trained_on_em():
    assert converged_em(10) == {"em_iters": EM_MAX_ITERS, "em_tol": EM_TOL}
    assert converged_em(0) == {"em_iters": 0, "em_tol": 0.0}  # trained on the pairwise fit: it stays pairwise


def test_em_fit_ignores_categorical_non_key_rows_and_empty_columns():
    x, _ = _gaussian_table(n=30, f=5, seed=4)
    known = torch.rand(x.shape, generator=torch.Generator().manual_seed(5)) > 0.4
    known[0, :, 4] = False  # a column with nothing known
    is_cat = torch.tensor([[False, False, False, True, False]])
    key = torch.ones(1, 30, dtype=torch.bool)
    key[0, -5:] = False
    mean, cov = table_gaussian(x, known, is_cat, key, em_iters=5)
    x2 = x.clone()
    x2[0, -5:] = 100.0
    mean2, cov2 = table_gaussian(x2, known, is_cat, key, em_iters=5)
    assert torch.allclose(cov, cov2) and torch.allclose(mean, mean2)
    for col in (3, 4):  # categorical and empty: mean 0, unit variance, no covariance
        assert float(mean[0, col]) == 0.0 and float(cov[0, col, col]) == 1.0
        assert torch.all(cov[0, col, torch.arange(5) != col] == 0)
    est = gaussian_estimate(x, known, is_cat, cov, mean)
    assert torch.isfinite(est).all() and torch.all(est[0, :, 3] == 0)


def _class_table(n=600, seed=0):
    """Three Gaussian classes with a shared covariance in 3 numeric columns (LDA's model), as one table:
    numeric columns standardized, the class as a categorical column (code), hidden in the last 200 rows."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[0.0, 0.0, 0.0], [1.5, 0.5, 0.0], [3.0, 0.0, 1.0]])
    x = centres[y] + torch.randn(n, 3, generator=g) @ torch.tensor([[1.0, 0.3, 0.0], [0.0, 1.0, 0.2], [0.0, 0.0, 1.0]])
    x = (x - x.mean(0)) / x.std(0)
    table = torch.cat([x, y[:, None].float()], 1)[None]
    known = torch.ones_like(table, dtype=torch.bool)
    known[0, -200:, 3] = False
    is_cat = torch.tensor([[False, False, False, True]])
    n_classes = torch.tensor([[0, 0, 0, 3]])
    return table, known, is_cat, n_classes, y


def test_categorical_probabilities_are_linear_discriminant_posteriors():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    table, known, is_cat, n_classes, y = _class_table()
    key = torch.ones(1, table.shape[1], dtype=torch.bool)
    key[0, -200:] = False  # fit on the labelled rows, as a classifier's context
    _, probs, _ = cell_estimates(table, known, is_cat, n_classes, 3, key_mask=key, em_iters=10)
    x = table[0, :, :3].numpy()
    lda = LinearDiscriminantAnalysis().fit(x[:-200], y[:-200].numpy())
    expected = torch.tensor(lda.predict_proba(x[-200:]), dtype=torch.float32)
    # The same model, fitted a little differently (shrinkage toward the diagonal): close, not equal.
    assert (probs[0, -200:, 3] - expected).abs().mean() < 0.03
    assert (probs[0, -200:, 3].argmax(-1) == expected.argmax(-1)).float().mean() > 0.95
    # Known cells: their own level with certainty; numeric columns carry no probabilities.
    assert torch.equal(probs[0, :-200, 3], torch.nn.functional.one_hot(y[:-200], 3).float())
    assert torch.all(probs[0, :, :3] == 0)


def test_known_categories_inform_numeric_estimates_and_relabelling_levels_permutes_probabilities():
    table, known, is_cat, n_classes, _ = _class_table(seed=1)
    known = known.clone()
    known[0, -200:, 3] = True  # classes known ...
    known[0, -200:, 0] = False  # ... first numeric column hidden
    gauss = cell_estimates(table, known, is_cat, n_classes, 3, em_iters=10)[0]
    numeric_only = cell_estimates(table, known, is_cat, n_classes, 3, em_iters=10, categorical=False)[0]
    truth = table[0, -200:, 0]
    err_with = (gauss[0, -200:, 0] - truth).pow(2).mean()
    err_without = (numeric_only[0, -200:, 0] - truth).pow(2).mean()
    assert err_with < 0.8 * err_without  # the class says where the first column's centre lies
    perm = torch.tensor([2, 0, 1])  # level c is relabelled perm[c]
    relabelled = table.clone()
    relabelled[0, :, 3] = perm[table[0, :, 3].long()].float()
    hidden = known.clone()
    hidden[0, -200:, 3] = False
    p = cell_estimates(table, hidden, is_cat, n_classes, 3, em_iters=10)[1]
    p_relabelled = cell_estimates(relabelled, hidden, is_cat, n_classes, 3, em_iters=10)[1]
    torch.testing.assert_close(p_relabelled[..., 3, perm], p[..., 3, :], atol=1e-5, rtol=0)


def test_em_sums_each_row_s_conditional_covariance_by_its_weight():
    """EM's E-step: the weighted sum over rows of Cov[x | the row's known cells], cov - cov_.K cov_KK^-1 cov_K.
    per row, computed here one row at a time (a row knowing nothing adds cov, a complete row 0, a row of weight
    0 nothing), against ``_conditional``'s sum of inverses of the known blocks (session 33)."""
    g = torch.Generator().manual_seed(3)
    a = torch.randn(2, 5, 5, generator=g, dtype=torch.float64)
    cov = a @ a.mT + 0.5 * torch.eye(5, dtype=torch.float64)
    x = torch.randn(2, 7, 5, generator=g)
    known = torch.rand(2, 7, 5, generator=g) > 0.4
    known[0, 0], known[0, 1] = False, True  # a row knowing nothing, a complete row
    weight = torch.rand(2, 7, generator=g, dtype=torch.float64)
    weight[1, 2] = 0.0
    mean = torch.randn(2, 5, generator=g, dtype=torch.float64)
    _, total = _conditional(x, known, mean, cov, row_weight=weight)
    for b in range(2):
        expected = torch.zeros(5, 5, dtype=torch.float64)
        for n in range(7):
            k = known[b, n]
            cross = cov[b][:, k]
            conditional = cov[b] - cross @ torch.linalg.solve(cov[b][k][:, k], cross.T)
            expected += weight[b, n] * conditional
        torch.testing.assert_close(total[b], expected, rtol=1e-10, atol=1e-10)


def test_em_skips_a_table_with_no_known_cell_and_fits_the_others_as_alone():
    """EM on the CPU runs on the tables with a known cell only (an unconditional training table has none): the
    others get the fit they get alone, and the table with none the fit EM gives it (the start: zero mean, the
    identity), as when every table runs (``_em`` on the whole batch, as on CUDA)."""
    x0, _ = _gaussian_table(n=200, f=4, seed=1)
    x2, _ = _gaussian_table(n=200, f=4, seed=2)
    x = torch.cat([x0, torch.randn(1, 200, 4), x2]).float()
    known = torch.rand(3, 200, 4, generator=torch.Generator().manual_seed(0)) > 0.3
    known[1] = False
    is_cat = torch.zeros(3, 4, dtype=torch.bool)
    mean, cov = table_gaussian(x, known, is_cat, em_iters=5)
    for b in (0, 2):
        alone = table_gaussian(x[b : b + 1], known[b : b + 1], is_cat[b : b + 1], em_iters=5)
        torch.testing.assert_close(mean[b], alone[0][0], rtol=0, atol=1e-12)
        torch.testing.assert_close(cov[b], alone[1][0], rtol=0, atol=1e-12)
    assert torch.equal(mean[1], torch.zeros(4, dtype=torch.float64))
    assert torch.equal(cov[1], torch.eye(4, dtype=torch.float64))
    start = table_gaussian(x, known, is_cat, em_iters=0)
    every = _em(x, _observed(known, is_cat, None), *start, em_iters=5, em_tol=0.0)
    torch.testing.assert_close(mean, every[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(cov, every[1], rtol=0, atol=1e-12)


def test_a_failed_factorization_gives_the_mean_instead_of_stopping():
    """The factorizations read no status on the host (cholesky_ex): a row whose known block is not positive
    definite (never by construction, possible by rounding) gets the fitted mean, the other rows their
    estimate; torch.linalg.cholesky raised for the whole batch."""
    cov = torch.tensor([[[-1.0, 0.0, 0.0], [0.0, 1.0, 0.8], [0.0, 0.8, 1.0]]], dtype=torch.float64)
    x = torch.tensor([[[1.0, 2.0, 0.0], [0.0, 2.0, 0.0]]])
    known = torch.tensor([[[True, True, False], [False, True, False]]])  # row 0 knows the bad column
    est = gaussian_estimate(x, known, torch.zeros(1, 3, dtype=torch.bool), cov)
    assert torch.equal(est[0, 0], torch.zeros(3))
    assert est[0, 1, 2].item() == pytest.approx(1.6)


def test_sync_free_cholesky_helpers_match_torch():
    """Two triangular solves are torch.cholesky_solve bit for bit on CPU; the inverse by solves (off CPU)
    equals torch.cholesky_inverse up to rounding."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 5, 6, 6, generator=g, dtype=torch.float64)
    L = torch.linalg.cholesky(a @ a.mT + 6 * torch.eye(6, dtype=torch.float64))
    b = torch.randn(3, 5, 6, 1, generator=g, dtype=torch.float64)
    assert torch.equal(_cholesky_solve(b, L), torch.cholesky_solve(b, L))
    assert torch.allclose(_inverse_by_solves(L), torch.cholesky_inverse(L), rtol=1e-10, atol=1e-12)


def _hurdle_table(n=600, seed=0):
    """hours = max(0, z) (piled up at 0 for about half the rows), participation = hours > 0, a noisy copy of z."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator=g)
    hours = z.clamp(min=0)
    hours = (hours - hours.mean()) / hours.std()
    table = torch.stack([hours, z + 0.5 * torch.randn(n, generator=g), (z > 0).float()], 1)[None]
    known = torch.ones_like(table, dtype=torch.bool)
    known[0, n // 2:, 2] = False  # participation hidden in half the rows
    is_cat, n_classes = torch.tensor([[False, False, True]]), torch.tensor([[0, 0, 2]])
    return table, known, is_cat, n_classes


def test_point_masses_are_the_smallest_value_when_it_piles_up():
    from icl_diffusion.gaussian_feature import point_masses

    table, known, is_cat, _ = _hurdle_table()
    masses = point_masses(table, known, is_cat)
    assert masses[0, 0] == table[0, :, 0].min()  # hours: half of the rows at their smallest value
    assert masses[0, 1:].isnan().all()  # a continuous column has no point mass; categorical columns are skipped


def test_a_point_mass_makes_a_hurdle_category_linear_and_changes_nothing_without_one():
    table, known, is_cat, n_classes = _hurdle_table()
    truth = table[0, 300:, 2].long()
    probs = {pm: cell_estimates(table, known, is_cat, n_classes, 2, em_iters=10, point_mass=pm)[1]
             for pm in (False, True)}
    accuracy = {pm: (p[0, 300:, 2].argmax(-1) == truth).float().mean().item() for pm, p in probs.items()}
    assert accuracy[True] == 1.0 and accuracy[False] < 0.97, accuracy
    plain = table.clone()
    plain[0, :, 0] = torch.randn(plain.shape[1], generator=torch.Generator().manual_seed(3))  # no pile-up
    a, b = (cell_estimates(plain, known, is_cat, n_classes, 2, em_iters=10, point_mass=pm) for pm in (False, True))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and b[2][2].isnan().all()


def test_a_column_with_few_values_has_no_point_mass():
    from icl_diffusion.gaussian_feature import MASS_MIN_VALUES, point_masses

    table, known, is_cat, _ = _hurdle_table()
    for k in (2, MASS_MIN_VALUES - 1):  # a binary column (its indicator would be itself), a small scale (a year)
        few = table.clone()
        few[0, :, 0] = torch.arange(few.shape[1]) % k
        assert point_masses(few, known, is_cat).isnan().all()
