"""Look at what the prior draws: ``python -m priors.preview --out prior.png [--seed S]``.

One figure row per sampled table: histograms of two columns, a scatter plot of the most strongly
related pair of numeric columns (coloured by the target), and the known-cell pattern.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from .batch import sample_batch
from .config import PriorConfig

# (family, mask kind) of the rows of the figure: mostly SCM tables, one Gaussian, a spread of masks.
PANEL_ROWS = (
    ("scm", "mcar"),
    ("scm", "mar"),
    ("scm", "prediction"),
    ("scm", "block"),
    ("scm", "mnar"),
    ("gaussian", "column"),
)


def _strongest_pair(x: np.ndarray, numeric: np.ndarray) -> tuple[int, int]:
    """Indices of the two numeric columns with the largest |Spearman correlation| (any two if < 2)."""
    cols = np.flatnonzero(numeric)
    if len(cols) < 2:
        return 0, min(1, x.shape[1] - 1)
    ranks = np.argsort(np.argsort(x[:, cols], axis=0), axis=0).astype(float)
    corr = np.nan_to_num(np.corrcoef(ranks, rowvar=False))
    np.fill_diagonal(corr, 0.0)
    i, j = np.unravel_index(np.abs(corr).argmax(), corr.shape)
    return int(cols[i]), int(cols[j])


def render(out: str, seed: int = 0, cfg: PriorConfig | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = cfg or PriorConfig()
    generator = torch.Generator().manual_seed(seed)
    fig, axes = plt.subplots(len(PANEL_ROWS), 4, figsize=(16, 3.2 * len(PANEL_ROWS)))
    for row, (family, mask_kind) in enumerate(PANEL_ROWS):
        n_features = int(torch.randint(4, 13, (), generator=generator))
        batch = sample_batch(
            cfg,
            generator,
            batch_size=1,
            n_rows=300,
            n_features=n_features,
            family=family,
            mask_kind=mask_kind,
        )
        x = batch["x"][0].numpy()
        is_cat = batch["is_cat"][0].numpy()
        n_classes = batch["n_classes"][0].numpy()
        target = int(batch["target"][0])
        a, b = _strongest_pair(x, ~is_cat)
        kinds = ["cat" if c else "num" for c in is_cat]
        for ax, col in zip(axes[row, :2], (target, a if a != target else b)):
            ax.hist(x[:, col], bins=40, color="tab:blue" if not is_cat[col] else "tab:orange")
            label = f"K={n_classes[col]}" if is_cat[col] else f"{len(np.unique(x[:, col]))} distinct"
            ax.set_title(
                f"col {col}{' (target)' if col == target else ''}: {kinds[col]}, {label}", fontsize=9
            )
        ax = axes[row, 2]
        ax.scatter(x[:, a], x[:, b], c=x[:, target], s=6, cmap="viridis")
        ax.set_title(f"col {a} vs col {b} (colour: target col {target})", fontsize=9)
        ax = axes[row, 3]
        ax.imshow(
            batch["known"][0].numpy()[:100].T,
            aspect="auto",
            cmap="gray",
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
        rate = 1 - batch["known"][0].float().mean().item()
        ax.set_title(f"{family}/{batch['mask_kind']}: known (white), {rate:.0%} unknown", fontsize=9)
        ax.set_xlabel("row (first 100)")
        ax.set_ylabel("column")
    fig.suptitle(f"priors.preview seed={seed}")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    render(args.out, args.seed)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
