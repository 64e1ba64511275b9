"""Every hyperparameter distribution of the prior, as plain data.

The SCM, column, Gaussian and mask code only reads these numbers; changing the mixture of tables the
model is pretrained on means editing (or Hydra-overriding) this dataclass, never the generating code.

Conventions: a ``(lo, hi)`` pair is a range drawn uniformly unless its comment says log-uniform; a
``*_weights`` dict is an unnormalised categorical distribution over named choices; ``p_*`` is a
probability. Ranges may also be given as lists (what Hydra / OmegaConf produce); they are turned into
tuples on construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

MASK_KINDS = ("mcar", "mar", "mnar", "column", "block", "prediction")
FAMILIES = ("scm", "gaussian")
ACTIVATIONS = ("identity", "tanh", "sin", "softplus", "square", "relu", "abs", "step")


@dataclass
class PriorConfig:
    # ---- table sizes (drawn once per batch, log-uniform: small tables are cheap and teach the basics,
    # large ones are rarer but still seen) ----
    n_rows: tuple[int, int] = (8, 1024)
    n_features: tuple[int, int] = (2, 64)
    # Cells per batch: batch_size = max_cells // (rows * features), so every batch costs about the same.
    max_cells: int = 2**16
    max_batch_size: int = 64
    # True: a batch that rounding B down leaves short of max_cells (up to half of it unused) takes one more
    # table, its drawn rows cut to fit (priors.batch.filled_rows). For a device that a batch under the budget
    # leaves idle (a GPU); off by default because on a CPU a fuller batch only costs more: with categorical
    # columns a table costs more in a larger batch (the Gaussian feature pads every table to the widest
    # one-hot table of its batch): -7% tables/s on stage 8's prior (+0.4% on cpu_recipe's).
    fill_budget: bool = False
    # > 0: a table keeps rows past half of n_rows[1] only while it holds at most this many cells, as the
    # inference engine's key rows do (icl_diffusion.sampling.context_rows: a narrow table gets more of them);
    # a wider table's drawn rows are cut to max(n_rows[1] // 2, wide_table_cells // features). 0: no cut.
    wide_table_cells: int = 0

    family_weights: dict[str, float] = field(default_factory=lambda: {"scm": 0.8, "gaussian": 0.2})

    # ---- SCM graph: a layered random MLP (TabPFN-style) ----
    n_layers: tuple[int, int] = (1, 4)
    # Hidden nodes (all layers together) per table column; columns are a random subset of the nodes, so
    # fewer spare nodes means more columns share parents and stay predictable from each other.
    nodes_per_column: tuple[float, float] = (1.0, 2.5)
    # Root causes as a fraction of columns (log-uniform, at least 1): a low-dimensional latent gives
    # strongly dependent columns, which is what in-context regression is learned from.
    root_frac: tuple[float, float] = (0.1, 0.7)
    root_weights: dict[str, float] = field(
        default_factory=lambda: {"normal": 0.5, "uniform": 0.2, "clusters": 0.3}
    )
    n_clusters: tuple[int, int] = (2, 6)
    # "panel" roots (repeated measures; off unless root_weights gives them a weight): units per row
    # (log-uniform), the spread of each unit's trend over row time, and the within-unit noise (log-uniform).
    panel_units_frac: tuple[float, float] = (0.02, 0.3)
    panel_trend: tuple[float, float] = (0.0, 0.5)
    panel_noise: tuple[float, float] = (0.02, 0.3)
    # "heavy" roots (off unless root_weights gives them a weight): exp(s * normal), s uniform in this range.
    heavy_sigma: tuple[float, float] = (0.4, 1.0)
    # Probability that an edge between consecutive layers exists (every node keeps >= 1 parent).
    edge_density: tuple[float, float] = (0.2, 1.0)
    # Pre-activation gain (log-uniform) and offset scale: how far into tanh saturation / sin periods /
    # relu kinks a node's input reaches.
    act_gain: tuple[float, float] = (0.5, 2.0)
    act_shift_std: float = 1.0
    activation_weights: dict[str, float] = field(
        default_factory=lambda: {
            "identity": 2.0,  # linear relations are the most common in real tables
            "tanh": 1.0,
            "sin": 0.5,
            "softplus": 1.0,
            "square": 0.5,
            "relu": 1.0,
            "abs": 0.5,
            "step": 0.5,
        }
    )
    # Tree mechanisms: a share of batches uses oblivious decision trees (piecewise-constant functions of
    # parents or of the node's linear pre-activation) for a fraction of every layer's nodes.
    p_tree: float = 0.3
    tree_node_frac: tuple[float, float] = (0.3, 1.0)
    tree_depth: tuple[int, int] = (1, 4)

    # ---- noise ----
    noise_weights: dict[str, float] = field(
        default_factory=lambda: {"gaussian": 0.5, "laplace": 0.25, "student_t": 0.25}
    )
    student_t_df: tuple[int, ...] = (2, 4)  # 2 and 4 only: their quantile functions are closed-form
    # Noise std relative to a unit-variance signal, log-uniform per table (median ~0.07, and noise adds
    # up over layers: most tables keep columns well predictable from each other, some are noisy),
    # times a per-node factor (log-uniform).
    noise_std: tuple[float, float] = (0.01, 0.5)
    noise_node_factor: tuple[float, float] = (0.5, 2.0)
    p_heteroscedastic: float = 0.3
    hetero_strength: tuple[float, float] = (0.3, 1.0)

    # ---- columns ----
    p_classification: float = 0.5  # the target column is categorical
    p_has_categorical: float = 0.5  # a table has categorical feature columns at all
    categorical_frac: tuple[float, float] = (0.1, 0.6)
    max_classes: int = 10
    p_binary: float = 0.3  # a categorical column has exactly 2 levels (else log-uniform 3..max_classes)
    min_rows_per_class: int = 4  # caps levels at rows // this, so small tables don't get empty classes
    # Weight of a second, hidden node mixed into the score a categorical column is binned from.
    categorical_mix: tuple[float, float] = (0.0, 0.5)
    # Share of categorical columns drawn as a multinomial logit of several SCM nodes (each level its own
    # linear score of the parents plus a level bias, the argmax after Gumbel noise: regions in several
    # dimensions, rare levels when a bias is low) instead of thresholds on one score.
    p_multinomial: float = 0.0
    multinomial_parents: tuple[int, int] = (1, 4)
    multinomial_bias_std: float = 1.0  # spread of the level biases: larger, more imbalanced levels
    multinomial_noise: tuple[float, float] = (0.05, 1.0)  # Gumbel temperature (log-uniform), label noise
    # Share of categorical columns derived from a numeric column of the same table, as real tables record
    # one quantity twice: a binary "hurdle" (participation <=> hours > 0, card <=> spending > 0: the numeric
    # column piled up at the cut, the code says which side) or a coarse copy (age -> age group: bins of the
    # numeric column at random quantiles). Deterministic given the source column (``columns.derive``).
    p_derived: float = 0.0
    hurdle_quantile: tuple[float, float] = (0.1, 0.6)  # share of the source column piled up at the cut

    # ---- post-transforms of numeric columns (each independently per column) ----
    max_abs_z: float = 10.0  # standardized columns are clamped here first so exp() and scales stay finite
    p_skew: float = 0.2
    skew_strength: tuple[float, float] = (0.25, 1.0)  # x = exp(a * z)
    p_integer: float = 0.15
    integer_scale: tuple[float, float] = (0.3, 30.0)  # log-uniform; round(z * s + c)
    p_clip: float = 0.1
    # Bound in std units: (0.5, 2.0) piles up ~2-30% of a column; a negative bound lies past the mean (-1: 84%,
    # zero-inflated counts and hurdles: real columns often hold one value in most rows, prior_vs_real.md).
    clip_at: tuple[float, float] = (0.5, 2.0)
    # Ordinal codes: a share of numeric columns recorded as a few ordered levels, as real tables store 0/1 dummies
    # and scores 1..K in numeric columns (benchmarks/results/prior_vs_real.md: 20% of real numeric columns are
    # binary, 1.4% of the prior's). Levels cut at random quantiles of the column, codes from 0 or 1; 2 levels with
    # probability ordinal_binary, else uniform in 3..max_ordinal_levels. 0 draws nothing (earlier priors keep
    # their random streams).
    p_ordinal: float = 0.0
    ordinal_binary: float = 0.5
    max_ordinal_levels: int = 10
    # Group-level columns: the rows of a table fall into groups (towns, states, firms) and some columns hold one
    # value per group, as MASS/Boston repeats a town's tax rate, industry share and NOx in every tract of the town
    # and AER/Guns a state's density in every year: a tree or a row matching those values reads the group off them,
    # where the prior's columns all vary row by row (the point estimate's largest per-column losses to MissForest).
    # A table gets them with probability p_group: groups of group_size rows (log-uniform), contiguous in a score that
    # mixes a random direction of the row's columns with noise (groups of similar rows to arbitrary ones); each
    # column with probability uniform in group_col_frac holds its group's mean. 0 draws nothing.
    p_group: float = 0.0
    group_size: tuple[float, float] = (3.0, 50.0)
    group_col_frac: tuple[float, float] = (0.2, 0.6)
    p_outliers: float = 0.1
    outlier_rate: tuple[float, float] = (0.005, 0.03)
    outlier_size: tuple[float, float] = (5.0, 15.0)  # in column std units
    p_near_constant: float = 0.03  # never the target column
    near_constant_frac: tuple[float, float] = (0.9, 0.995)
    log10_scale: tuple[float, float] = (-2.0, 3.0)  # final column scale, log-uniform
    shift_std: float = 2.0  # final column offset, in units of its scale

    # ---- linear-Gaussian family (exact distribution known) ----
    gaussian_weights: dict[str, float] = field(default_factory=lambda: {"dag": 0.5, "spectrum": 0.5})
    dag_density: tuple[float, float] = (0.2, 0.8)
    dag_weight: tuple[float, float] = (0.5, 2.0)  # |edge weight|, random sign
    # Eigenvalues of the correlation spectrum decay like exp(-rate * i / F); larger rate, stronger
    # correlations. Clipped at 1 / max_condition of the largest.
    spectrum_decay: tuple[float, float] = (1.0, 8.0)
    max_condition: float = 1e3
    gaussian_scale: tuple[float, float] = (0.5, 2.0)  # per-column std, log-uniform ("standardized-ish")
    gaussian_mean_std: float = 1.0

    # ---- masks of known cells ----
    mask_weights: dict[str, float] = field(
        default_factory=lambda: {
            "mcar": 0.2,
            "mar": 0.15,
            "mnar": 0.15,
            "column": 0.1,
            "block": 0.1,
            "prediction": 0.3,
        }
    )
    p_mixed_masks: float = 0.2  # each table of the batch draws its own mask kind
    missing_rate: tuple[float, float] = (0.0, 0.7)  # share of unknown cells (mcar/mar/mnar/column/block)
    query_frac: tuple[float, float] = (0.1, 0.5)  # share of query rows (prediction masks)
    p_query_feature_missing: float = 0.5  # prediction masks also hide some feature cells ...
    query_feature_missing: tuple[float, float] = (0.0, 0.1)  # ... at this MCAR rate
    mar_driver_frac: tuple[float, float] = (0.2, 0.5)  # always-observed columns of MAR masks
    mar_strength: tuple[float, float] = (0.5, 3.0)  # logistic slope per driver (std units)
    mnar_strength: tuple[float, float] = (1.0, 4.0)  # logistic slope on the cell's own value
    column_fill: tuple[float, float] = (0.8, 1.0)  # share of rows missing in a whole-column mask column

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if hasattr(value, "items"):  # dict or OmegaConf DictConfig
                setattr(self, f.name, {str(k): float(v) for k, v in value.items()})
            elif hasattr(value, "__iter__") and not isinstance(value, (str, tuple)):  # list, ListConfig
                setattr(self, f.name, tuple(value))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on settings the generator cannot honour."""
        if self.n_rows[0] < 4 or self.n_rows[0] > self.n_rows[1]:
            raise ValueError(f"n_rows must satisfy 4 <= lo <= hi, got {self.n_rows}")
        if self.wide_table_cells < 0:
            raise ValueError(f"wide_table_cells must be >= 0, got {self.wide_table_cells}")
        if self.n_features[0] < 2 or self.n_features[0] > self.n_features[1]:
            raise ValueError(f"n_features must satisfy 2 <= lo <= hi, got {self.n_features}")
        if self.group_size[0] < 1 or self.group_size[0] > self.group_size[1]:
            raise ValueError(f"group_size must satisfy 1 <= lo <= hi, got {self.group_size}")
        if self.max_ordinal_levels < 3:
            raise ValueError(f"max_ordinal_levels must be >= 3, got {self.max_ordinal_levels}")
        if self.max_classes < 2:
            raise ValueError(f"max_classes must be >= 2, got {self.max_classes}")
        if not self.student_t_df or any(df not in (2, 4) for df in self.student_t_df):
            raise ValueError(f"student_t_df must hold 2 and/or 4, got {self.student_t_df}")
        if not 0.0 <= self.missing_rate[0] <= self.missing_rate[1] < 1.0:
            raise ValueError(f"missing_rate must satisfy 0 <= lo <= hi < 1, got {self.missing_rate}")
        for name, allowed in (
            ("family_weights", FAMILIES),
            ("mask_weights", MASK_KINDS),
            ("activation_weights", ACTIVATIONS),
            ("root_weights", ("normal", "uniform", "clusters", "panel", "heavy")),
            ("noise_weights", ("gaussian", "laplace", "student_t")),
            ("gaussian_weights", ("dag", "spectrum")),
        ):
            weights = getattr(self, name)
            unknown = set(weights) - set(allowed)
            if unknown:
                raise ValueError(f"{name}: unknown choices {sorted(unknown)}; allowed {allowed}")
            if sum(weights.values()) <= 0 or min(weights.values()) < 0:
                raise ValueError(f"{name}: weights must be >= 0 with a positive sum, got {weights}")
