"""sample_batch: shapes, dtypes, value ranges, guarantees and determinism."""

from __future__ import annotations

import math

import pytest
import torch

from priors import MASK_KINDS, PriorConfig, default_batch_size, sample_batch
from priors._random import Rng
from priors.batch import filled_rows, table_shape

# Smaller tables than the defaults keep the suite fast; the code paths are the same.
SMALL = PriorConfig(n_rows=(8, 128), n_features=(2, 16), max_cells=2**13)


def _check_batch(batch: dict, cfg: PriorConfig) -> None:
    x, known, query = batch["x"], batch["known"], batch["query"]
    B, N, F = x.shape
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    assert known.dtype == torch.bool and known.shape == (B, N, F)
    assert query.dtype == torch.bool and query.shape == (B, N)
    assert batch["is_cat"].dtype == torch.bool and batch["is_cat"].shape == (B, F)
    assert batch["n_classes"].dtype == torch.int64 and batch["n_classes"].shape == (B, F)
    assert batch["target"].dtype == torch.int64 and batch["target"].shape == (B,)
    assert ((batch["target"] >= 0) & (batch["target"] < F)).all()
    assert batch["family"] in ("scm", "gaussian")
    assert batch["mask_kind"] in (*MASK_KINDS, "mixed")

    # Guarantees: >= 2 known cells per column, >= 1 unknown cell per table.
    assert (known.sum(1) >= 2).all()
    assert ((~known).flatten(1).sum(1) >= 1).all()

    # Categorical columns: 2..max_classes levels, integer codes in [0, n_classes); numeric: 0 levels.
    is_cat, n_classes = batch["is_cat"], batch["n_classes"]
    assert (n_classes[~is_cat] == 0).all()
    assert ((n_classes[is_cat] >= 2) & (n_classes[is_cat] <= cfg.max_classes)).all()
    codes = x.transpose(1, 2)[is_cat]  # (n_cat_columns, N)
    assert (codes == codes.round()).all()
    assert ((codes >= 0) & (codes < n_classes[is_cat].unsqueeze(-1))).all()

    # Query rows: only where the target cell is unknown.
    target_known = known.gather(2, batch["target"].view(B, 1, 1).expand(B, N, 1)).squeeze(-1)
    assert not (query & target_known).any()
    if batch["mask_kind"] not in ("prediction", "mixed"):
        assert not query.any()

    if batch["family"] == "gaussian":
        assert batch["mean"].shape == (B, F) and batch["cov"].shape == (B, F, F)
        assert not is_cat.any()
        assert torch.allclose(batch["cov"], batch["cov"].transpose(1, 2))
    else:
        assert "mean" not in batch and "cov" not in batch


def test_random_batches_satisfy_the_contract() -> None:
    generator = torch.Generator().manual_seed(0)
    families = set()
    for _ in range(40):
        batch = sample_batch(SMALL, generator)
        _check_batch(batch, SMALL)
        families.add(batch["family"])
        N, F = batch["x"].shape[1:]
        assert batch["x"].shape[0] == default_batch_size(SMALL, N, F)
    assert families == {"scm", "gaussian"}


@pytest.mark.parametrize("family", ["scm", "gaussian"])
@pytest.mark.parametrize("mask_kind", [*MASK_KINDS, "mixed"])
def test_every_family_and_mask_kind(family: str, mask_kind: str) -> None:
    generator = torch.Generator().manual_seed(1)
    batch = sample_batch(
        SMALL, generator, batch_size=6, n_rows=24, n_features=5, family=family, mask_kind=mask_kind
    )
    assert batch["x"].shape == (6, 24, 5)
    assert batch["mask_kind"] == mask_kind and batch["family"] == family
    _check_batch(batch, SMALL)


def test_extreme_sizes() -> None:
    generator = torch.Generator().manual_seed(2)
    for n_rows, n_features in [(4, 2), (3, 2), (1024, 64), (8, 64)]:
        for family in ("scm", "gaussian"):
            batch = sample_batch(
                PriorConfig(), generator, n_rows=n_rows, n_features=n_features, family=family
            )
            _check_batch(batch, PriorConfig())


def test_batch_size_follows_cell_budget() -> None:
    cfg = PriorConfig(max_cells=2**16, max_batch_size=64)
    assert default_batch_size(cfg, 64, 8) == 64
    assert default_batch_size(cfg, 128, 16) == 32
    assert default_batch_size(cfg, 1024, 64) == 1
    assert default_batch_size(cfg, 1024, 128) == 1


def _shapes(cfg: PriorConfig, n: int) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """(as drawn, filled) shapes of n seeded draws; B given keeps the drawn rows."""
    out = []
    for seed in range(n):
        _, N, F = table_shape(cfg, Rng(torch.Generator().manual_seed(seed)), batch_size=1)
        out.append(((default_batch_size(cfg, N, F), N, F), table_shape(cfg, Rng(torch.Generator().manual_seed(seed)))))
    return out


def test_drawn_shapes_fill_the_cell_budget() -> None:
    """On the default prior, a batch under the max_batch_size cap fills 99% of max_cells on average (94.7%
    before: B = max_cells // (N * F) rounds down), rows move by at most 2x, and B stays default_batch_size of
    the final shape. Capped batches are left as drawn: the 34% of the budget still unused over all batches is
    almost all theirs, and only more tables would fill them."""
    cfg = PriorConfig(fill_budget=True)
    fills, capped = [], []
    for (_, drawn, _), (B, N, F) in _shapes(cfg, 3000):
        assert B == default_batch_size(cfg, N, F) and cfg.n_rows[0] <= N <= cfg.n_rows[1]
        assert B * N * F <= cfg.max_cells and 0.5 <= N / drawn <= 2
        (capped if B == cfg.max_batch_size else fills).append(B * N * F / cfg.max_cells)
    assert sum(fills) / len(fills) > 0.98
    assert sum(fills + capped) / (len(fills) + len(capped)) > 0.655  # 0.640 before


def test_filled_batches_hold_more_tables_no_larger_on_the_cpu_recipe() -> None:
    """On the shipped CPU recipe's prior (conf/experiment/cpu_recipe.yaml) filled batches hold more tables,
    each no larger than drawn (cells, and rows^2 x features for the row attention); the tables' mean log rows
    moves by under 2%. (CPU tables/s, measured: +0.4%; but -7% on stage 8's prior, where a larger batch pads
    each table to a wider one-hot table: PriorConfig.fill_budget.)"""
    cfg = PriorConfig(n_rows=(16, 96), n_features=(2, 10), max_cells=4096, max_batch_size=32, fill_budget=True)
    pairs = _shapes(cfg, 3000)

    def per_table(shapes, work):
        return sum(B * work(N, F) for B, N, F in shapes) / sum(B for B, _, _ in shapes)

    drawn, filled = [p[0] for p in pairs], [p[1] for p in pairs]
    assert all(f[1] <= d[1] for d, f in pairs)  # no batch of one table here: rows only shrink
    assert sum(f[0] for f in filled) > 1.02 * sum(d[0] for d in drawn)
    for work in (lambda N, F: N * F, lambda N, F: N * N * F):
        assert per_table(filled, work) <= per_table(drawn, work)
    assert abs(per_table(filled, lambda N, F: math.log(N)) - per_table(drawn, lambda N, F: math.log(N))) < 0.02


def test_filled_rows_leave_given_sizes_and_capped_batches_alone() -> None:
    cfg = PriorConfig(n_rows=(8, 1024), max_cells=2**16, max_batch_size=64, fill_budget=True)
    assert filled_rows(cfg, 750, 64) == 1024  # one table at 0.73 of the budget: 1024 rows fill it
    assert filled_rows(cfg, 600, 64) == 512  # at 0.59: two tables of 512 rows (nearer in log than 1024)
    assert filled_rows(cfg, 300, 64) == 256  # two tables at 0.59: three tables of 256 rows
    assert filled_rows(cfg, 16, 8) == 16  # 512 tables would fit: capped at 64, rows kept
    assert filled_rows(cfg, 1024, 128) == 1024  # one table over the budget
    rng = Rng(torch.Generator().manual_seed(0))
    assert table_shape(cfg, rng, n_rows=600, n_features=64) == (1, 600, 64)
    assert table_shape(cfg, rng, batch_size=3, n_rows=600, n_features=64) == (3, 600, 64)
    as_drawn = PriorConfig()  # fill_budget is off by default
    for seed in range(20):
        filled = table_shape(PriorConfig(fill_budget=True), Rng(torch.Generator().manual_seed(seed)))
        drawn = table_shape(as_drawn, Rng(torch.Generator().manual_seed(seed)))
        assert drawn[2] == filled[2] and drawn[0] == default_batch_size(as_drawn, drawn[1], drawn[2])


def test_only_narrow_tables_keep_rows_past_half_the_range() -> None:
    """wide_table_cells (the engine's context_cells rule): a drawn table keeps rows past n_rows[1] // 2 only
    while it holds at most that many cells; the draw is the same otherwise, and given rows are kept."""
    cut = PriorConfig(n_rows=(64, 1024), n_features=(2, 32), max_cells=16384, wide_table_cells=10240)
    uncut = PriorConfig(n_rows=(64, 1024), n_features=(2, 32), max_cells=16384)
    long_narrow = long_wide = 0
    for seed in range(400):
        B, N, F = table_shape(cut, Rng(torch.Generator().manual_seed(seed)))
        _, N0, F0 = table_shape(uncut, Rng(torch.Generator().manual_seed(seed)))
        assert F == F0 and N == min(N0, max(512, 10240 // F)) and B == default_batch_size(cut, N, F)
        long_narrow += N > 512 and F <= 10
        long_wide += N0 > 512 and F > 20
    assert long_narrow > 20 and long_wide > 5  # both cases drawn
    assert table_shape(cut, Rng(torch.Generator().manual_seed(0)), n_rows=1000, n_features=30)[1] == 1000
    with pytest.raises(ValueError, match="wide_table_cells"):
        PriorConfig(wide_table_cells=-1)


def test_same_generator_state_gives_identical_batch() -> None:
    for seed in range(5):
        a = sample_batch(SMALL, torch.Generator().manual_seed(seed))
        b = sample_batch(SMALL, torch.Generator().manual_seed(seed))
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], torch.Tensor):
                assert torch.equal(a[key], b[key]), key
            else:
                assert a[key] == b[key], key
    c = sample_batch(SMALL, torch.Generator().manual_seed(99))
    assert not (c["x"].shape == a["x"].shape and torch.equal(c["x"], a["x"]))


def test_target_type_follows_p_classification() -> None:
    generator = torch.Generator().manual_seed(3)
    for p in (0.0, 1.0):
        cfg = PriorConfig(p_classification=p, family_weights={"scm": 1.0})
        batch = sample_batch(cfg, generator, batch_size=32, n_rows=16, n_features=4)
        target_is_cat = batch["is_cat"].gather(1, batch["target"].unsqueeze(-1))
        assert bool(target_is_cat.all()) == (p == 1.0)
        assert bool((~target_is_cat).all()) == (p == 0.0)


def test_multinomial_categoricals_use_their_levels_and_depend_on_other_columns() -> None:
    """Multinomial-logit categorical columns: codes within their level count, several levels in use, and
    predictable from the numeric columns (a nearest-neighbour vote beats the mode on most tables)."""
    generator = torch.Generator().manual_seed(6)
    cfg = PriorConfig(p_has_categorical=1.0, categorical_frac=(0.3, 0.3), p_multinomial=1.0, max_classes=24,
                      multinomial_noise=(0.05, 0.05), p_skew=0.0, p_integer=0.0, p_outliers=0.0, p_binary=0.0)
    batch = sample_batch(cfg, generator, batch_size=32, n_rows=256, n_features=8, family="scm")
    x, is_cat, n_classes = batch["x"], batch["is_cat"], batch["n_classes"]
    wins = tables = 0
    for b in range(x.shape[0]):
        cats, nums = is_cat[b].nonzero()[:, 0], (~is_cat[b]).nonzero()[:, 0]
        if len(cats) == 0 or len(nums) == 0:
            continue
        j = int(cats[0])
        codes = x[b, :, j].long()
        assert codes.min() >= 0 and codes.max() < n_classes[b, j]
        assert len(codes.unique()) >= 2
        z = x[b][:, nums]
        z = (z - z.mean(0)) / z.std(0).clamp(min=1e-6)
        dist = torch.cdist(z, z) + torch.eye(len(z)) * 1e9
        neighbours = codes[dist.topk(5, largest=False).indices]  # (N, 5)
        vote = torch.mode(neighbours, 1).values
        wins += int((vote == codes).float().mean() > (codes == torch.mode(codes).values).float().mean())
        tables += 1
    assert tables >= 10 and wins / tables > 0.7


def test_columns_depend_on_each_other() -> None:
    """The prior must teach in-context regression: columns are, on the whole, strongly related."""
    generator = torch.Generator().manual_seed(4)
    cfg = PriorConfig(p_has_categorical=0.0, p_classification=0.0, p_skew=0.0, p_integer=0.0, p_outliers=0.0)
    batch = sample_batch(cfg, generator, batch_size=64, n_rows=256, n_features=6, family="scm")
    x = batch["x"].double()
    ranks = x.argsort(1).argsort(1).double()  # Spearman: robust to the post-transforms
    ranks = (ranks - ranks.mean(1, keepdim=True)) / ranks.std(1, keepdim=True)
    corr = (ranks.transpose(1, 2) @ ranks) / (x.shape[1] - 1)  # (B, F, F)
    off_diag = corr.abs() - torch.eye(6, dtype=torch.float64)
    strongest = off_diag.amax((1, 2))  # per table, the most related pair
    assert strongest.median() > 0.6
    assert torch.isfinite(corr).all()


def test_post_transforms_appear() -> None:
    generator = torch.Generator().manual_seed(5)
    cfg = PriorConfig(p_integer=1.0, p_has_categorical=0.0, p_classification=0.0, p_near_constant=0.0)
    x = sample_batch(cfg, generator, batch_size=8, n_rows=64, n_features=4, family="scm")["x"]
    assert (x == x.round()).all()
    cfg = PriorConfig(
        p_skew=1.0, p_integer=0.0, p_has_categorical=0.0, p_classification=0.0, p_near_constant=0.0
    )
    x = sample_batch(cfg, generator, batch_size=8, n_rows=64, n_features=4, family="scm")["x"]
    assert (x > 0).all()  # log-normal-like columns keep offset 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_batch() -> None:
    batch = sample_batch(SMALL, torch.Generator().manual_seed(0), device="cuda")
    assert batch["x"].device.type == "cuda"
    _check_batch({k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}, SMALL)
    again = sample_batch(SMALL, torch.Generator().manual_seed(0), device="cuda")
    assert torch.equal(batch["x"], again["x"]) and torch.equal(batch["known"], again["known"])


def test_panel_roots_give_near_duplicate_rows_and_leave_other_priors_unchanged() -> None:
    from priors._random import Rng
    from priors.scm import sample_scm_nodes

    def nearest_row_distance(weights: dict) -> float:
        cfg = PriorConfig(root_weights=weights)
        h = sample_scm_nodes(cfg, Rng(torch.Generator().manual_seed(0)), 8, 200, 6)
        h = (h - h.mean(1, keepdim=True)) / h.std(1, keepdim=True).clamp(min=1e-6)
        d = torch.cdist(h, h) + torch.eye(200) * 1e9
        return float(d.min(2).values.median() / d[d < 1e8].median())

    assert nearest_row_distance({"panel": 1.0}) < 0.5 * nearest_row_distance({"normal": 1.0})
    # A zero panel weight draws nothing for it: earlier priors keep their random streams bit for bit.
    a = sample_scm_nodes(PriorConfig(), Rng(torch.Generator().manual_seed(1)), 4, 50, 5)
    b = sample_scm_nodes(PriorConfig(root_weights={**PriorConfig().root_weights, "panel": 0.0}),
                         Rng(torch.Generator().manual_seed(1)), 4, 50, 5)
    assert torch.equal(a, b)

def _is_binning_of(codes: torch.Tensor, source: torch.Tensor) -> bool:
    """codes are a function of source's order: sorted by source, each level occupies one contiguous run."""
    ordered = codes[torch.argsort(source, stable=True)]
    runs = 1 + int((ordered[1:] != ordered[:-1]).sum())
    return runs == len(ordered.unique())


def test_heavy_roots_give_far_outlying_rows_and_leave_other_priors_unchanged() -> None:
    from priors._random import Rng
    from priors.scm import sample_scm_nodes

    def far_share(weights: dict) -> float:
        """The share of hidden nodes whose largest value is over 5 standard deviations out."""
        cfg = PriorConfig(root_weights=weights)
        z = torch.cat([sample_scm_nodes(cfg, Rng(torch.Generator().manual_seed(s)), 8, 300, 6)
                       for s in range(4)], -1)
        z = (z - z.mean(1, keepdim=True)) / z.std(1, keepdim=True).clamp(min=1e-6)
        return float((z.abs().amax(1) > 5).float().mean())

    assert far_share({"heavy": 1.0}) > 1.5 * far_share({"normal": 1.0})
    a = sample_scm_nodes(PriorConfig(), Rng(torch.Generator().manual_seed(1)), 4, 50, 5)
    b = sample_scm_nodes(PriorConfig(root_weights={**PriorConfig().root_weights, "heavy": 0.0}),
                         Rng(torch.Generator().manual_seed(1)), 4, 50, 5)
    assert torch.equal(a, b)


def test_derived_categoricals_are_hurdles_or_coarse_copies_of_a_numeric_column() -> None:
    """p_derived=1: every categorical column of a table with a numeric column is a binning of one of them, and
    a binary hurdle's source is piled up exactly on one of its levels; at p_derived=0 most are not."""
    generator = torch.Generator().manual_seed(8)
    cfg = PriorConfig(p_has_categorical=1.0, categorical_frac=(0.4, 0.4), p_derived=1.0, max_classes=6,
                      p_skew=0.0, p_integer=0.0, p_outliers=0.0, p_near_constant=0.0, p_clip=0.0)
    batch = sample_batch(cfg, generator, batch_size=32, n_rows=128, n_features=8, family="scm")
    x, is_cat = batch["x"], batch["is_cat"]
    derived = hurdles = 0
    for b in range(x.shape[0]):
        nums = (~is_cat[b]).nonzero()[:, 0]
        for j in is_cat[b].nonzero()[:, 0] if len(nums) else []:
            codes = x[b, :, j].long()
            sources = [k for k in nums if _is_binning_of(codes, x[b, :, k])]
            assert sources, f"table {b} column {int(j)} is no binning of a numeric column"
            derived += 1
            for k in sources:  # a hurdle: one level holds exactly the rows at the source's minimum
                low = x[b, :, k] == x[b, :, k].min()
                hurdles += int(low.sum() > 1 and len(codes.unique()) == 2 and len(codes[low].unique()) == 1
                               and bool((codes[~low] != codes[low][0]).all()))
    assert derived >= 20 and hurdles >= 3

    cfg.p_derived = 0.0
    batch = sample_batch(cfg, torch.Generator().manual_seed(8), batch_size=32, n_rows=128, n_features=8, family="scm")
    x, is_cat = batch["x"], batch["is_cat"]
    binnings = [any(_is_binning_of(x[b, :, j].long(), x[b, :, k]) for k in (~is_cat[b]).nonzero()[:, 0])
                for b in range(x.shape[0]) for j in is_cat[b].nonzero()[:, 0]]
    assert sum(binnings) < 0.5 * len(binnings)


def test_ordinal_codes_are_a_few_ordered_levels_of_the_column() -> None:
    from priors._random import Rng
    from priors.columns import ordinal_codes

    z = torch.randn(16, 300, 5)
    codes = ordinal_codes(PriorConfig(max_ordinal_levels=4), Rng(torch.Generator().manual_seed(0)), z)
    assert (codes == codes.round()).all() and codes.min() >= 0 and codes.max() <= 4
    order = z.argsort(1)
    assert (codes.gather(1, order).diff(dim=1) >= 0).all()  # monotone in the column: a cell's level is its rank's
    levels = torch.tensor([len(codes[b, :, f].unique()) for b in range(16) for f in range(5)])
    assert levels.max() <= 4 and (levels == 2).float().mean() > 0.3  # ordinal_binary 0.5: about half are dummies
    binary = ordinal_codes(PriorConfig(ordinal_binary=1.0), Rng(torch.Generator().manual_seed(1)), z)
    assert all(len(binary[b, :, f].unique()) <= 2 for b in range(16) for f in range(5))


def test_the_prior_draws_ordinal_and_zero_inflated_columns_when_asked() -> None:
    plain = {"p_has_categorical": 0.0, "p_classification": 0.0, "p_near_constant": 0.0, "p_outliers": 0.0, "p_skew": 0.0}
    x = sample_batch(PriorConfig(p_ordinal=1.0, **plain), torch.Generator().manual_seed(2), batch_size=8,
                     n_rows=128, n_features=4, family="scm")["x"]
    assert all(len(x[b, :, f].unique()) <= 10 for b in range(8) for f in range(4))
    # A clip bound past the mean piles most of the column up at one value (zero-inflated counts, hurdles).
    x = sample_batch(PriorConfig(p_clip=1.0, clip_at=(-1.0, -1.0), p_integer=0.0, **plain),
                     torch.Generator().manual_seed(3), batch_size=8, n_rows=400, n_features=4, family="scm")["x"]
    piled = torch.tensor([(x[b, :, f] == x[b, :, f].mode().values).float().mean() for b in range(8) for f in range(4)])
    assert piled.median() > 0.7
    # p_ordinal = 0 (the default) draws nothing: earlier recipes keep their tables bit for bit (this batch's sum
    # before the ordinal codes existed, session 39).
    a = sample_batch(PriorConfig(), torch.Generator().manual_seed(4), batch_size=4, n_rows=64, n_features=5)
    # rel 1e-9: the float32 math of one CPU differs from another's in the last bits (session 51's machine: 3e-11);
    # a change in what is drawn moves the sum by far more.
    assert float(a["x"].double().sum()) == pytest.approx(-42541.47669574359, rel=1e-9)
    assert int((a["known"].flatten().nonzero().squeeze(1) ** 2 % 9973).sum()) == 4210482  # which cells are known


def test_group_level_columns_hold_one_value_per_group() -> None:
    plain = {"p_has_categorical": 0.0, "p_classification": 0.0, "p_near_constant": 0.0, "p_outliers": 0.0,
             "p_skew": 0.0, "p_integer": 0.0, "p_clip": 0.0}
    cfg = PriorConfig(p_group=1.0, group_size=(10.0, 10.0), group_col_frac=(0.5, 0.5), **plain)
    x = sample_batch(cfg, torch.Generator().manual_seed(0), batch_size=8, n_rows=200, n_features=6, family="scm")["x"]
    grouped_tables = 0
    for b in range(8):
        distinct = torch.tensor([len(x[b, :, f].unique()) for f in range(6)])
        grouped = (distinct == 20).nonzero().squeeze(1)  # 200 rows in groups of 10
        assert ((distinct == 20) | (distinct == 200)).all()
        if len(grouped) >= 2:  # the group-level columns share one grouping: one column's value names the other's
            a, c = x[b, :, grouped[0]], x[b, :, grouped[1]]
            assert all(len(c[a == v].unique()) == 1 for v in a.unique())
            grouped_tables += 1
    assert grouped_tables >= 3
