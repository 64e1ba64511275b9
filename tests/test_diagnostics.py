"""Multiple-imputation diagnostics: Rubin's rules against hand-computed values, the observed-vs-imputed plot
headless (Agg), through the estimator and the CLI on the tiny checkpoint."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from icl_diffusion import DiffusionImputer
from icl_diffusion.cli import main
from icl_diffusion.diagnostics import plot_imputations, rubin_pool

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_rubin_pool_by_hand():
    # K = 3 estimates 1, 2, 3 with variance 0.5 each; complete-data df 10.
    pool = rubin_pool([1.0, 2.0, 3.0], [0.5, 0.5, 0.5], df_complete=10)
    # Q bar = 2, U bar = 0.5, B = 1, T = 0.5 + (4/3) 1 = 11/6, lambda = (4/3) / (11/6) = 8/11,
    # df_old = 2 / lambda^2 = 242/64, df_obs = (11/13) 10 (1 - 8/11) = 30/13, df = 1 / (64/242 + 13/30).
    df = 1 / (64 / 242 + 13 / 30)
    assert pool.estimate == 2.0 and pool.within == 0.5 and pool.between == 1.0
    assert pool.total == pytest.approx(11 / 6)
    assert pool.riv == pytest.approx(8 / 3)
    assert pool.df == pytest.approx(df)  # 1.4331
    assert pool.fmi == pytest.approx((8 / 3 + 2 / (df + 3)) / (11 / 3))
    half = stats.t.ppf(0.975, df) * np.sqrt(11 / 6)
    assert (pool.ci_low, pool.ci_high) == (pytest.approx(2 - half), pytest.approx(2 + half))
    # Large-sample (Rubin 1987) df when the complete-data df is unknown.
    assert rubin_pool([1.0, 2.0, 3.0], [0.5, 0.5, 0.5]).df == pytest.approx(242 / 64)


def test_rubin_pool_columns_and_agreeing_draws():
    rng = np.random.default_rng(0)
    q, u = rng.normal(size=(5, 3)), rng.uniform(0.1, 1, size=(5, 3))
    pooled = rubin_pool(q, u, df_complete=50, alpha=0.1)
    for p in range(3):  # (K, P) pools each quantity on its own
        one = rubin_pool(q[:, p], u[:, p], df_complete=50, alpha=0.1)
        assert pooled.ci_high[p] == pytest.approx(one.ci_high) and pooled.df[p] == pytest.approx(one.df)
    # Identical draws: no between variance, df is the complete-data one adjusted ((n+1)/(n+3) n), or a
    # normal interval without it.
    same = rubin_pool([1.5] * 4, [0.04] * 4, df_complete=20)
    assert same.between == 0 and same.total == pytest.approx(0.04) and same.df == pytest.approx(21 / 23 * 20)
    normal = rubin_pool([1.5] * 4, [0.04] * 4)
    assert np.isinf(normal.df) and normal.ci_high == pytest.approx(1.5 + 1.959964 * 0.2)
    with pytest.raises(ValueError, match="same shape"):
        rubin_pool([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="K >= 2"):
        rubin_pool([1.0], [1.0])


def _table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.gamma(2.0, size=n), "c": rng.normal(size=n),
                       "kind": rng.choice(["x", "y", "z"], n)})
    df.loc[:5, "a"] = np.nan
    df.loc[10:13, "b"] = np.nan
    df.loc[20:24, "kind"] = None
    return df


def _fill(df, seed):
    rng = np.random.default_rng(seed)
    out = df.copy()
    for col in ("a", "b"):
        out.loc[df[col].isna(), col] = rng.normal(size=df[col].isna().sum())
    out.loc[df["kind"].isna(), "kind"] = rng.choice(["x", "y", "w"], df["kind"].isna().sum())
    return out


def test_plot_one_panel_per_imputed_column():
    df = _table()
    fig = plot_imputations(df, [_fill(df, k) for k in range(3)])
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split(":")[0] for ax in panels] == ["a", "b", "kind"]  # c has no missing cell
    assert len(panels[0].lines) == 3 + 1  # one density per draw and the observed one
    assert len(panels[2].patches) == 2 * 4  # observed and imputed bars for x, y, z and the imputed-only w
    assert panels[0].get_legend() is not None
    fig.savefig(io.BytesIO(), format="png")


def test_plot_options():
    df = _table()
    draws = [_fill(df, k) for k in range(2)]
    fig = plot_imputations(df.to_numpy(), [d.to_numpy() for d in draws], columns=[1, 2],
                           categorical=[False, False, False, True])
    assert [ax.get_title().split(":")[0] for ax in fig.axes if ax.get_visible()] == ["1"]
    _, axes = plt.subplots(1, 2)
    assert plot_imputations(df, draws[0], columns=["kind", "a"], axes=axes) is axes[0].figure
    assert len(axes[0].patches) == 2 * 4 and len(axes[1].lines) == 2
    with pytest.raises(ValueError, match="nothing was imputed"):
        plot_imputations(df, draws, columns=["c"])
    with pytest.raises(ValueError, match="not in X"):
        plot_imputations(df, draws, columns=["nope"])
    with pytest.raises(ValueError, match="completed copies"):
        plot_imputations(df, [draws[0].iloc[:5]])


def test_imputer_plot_and_cli(tiny_checkpoint, tmp_path):
    df = _table()
    imp = DiffusionImputer(checkpoint=tiny_checkpoint, random_state=0, n_steps=2).fit(df)
    fig = imp.plot_imputations(df, n_imputations=2)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 3
    src, out, png = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "plot.png"
    df.to_csv(src, index=False)
    args = ["impute", str(src), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--n-imputations", "2",
            "--n-steps", "2", "--plot", str(png)]
    assert main(args) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
