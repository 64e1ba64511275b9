"""The shipped checkpoint's training curve across all its stages: validation metrics against total tables seen
and total CPU-hours (each stage's curves_stage<k>.csv, up to the step its weights were taken at, offset by the
stages before it).

    .venv/bin/python benchmarks/cumulative_curve.py    # writes checkpoints/curves_cumulative.{csv,png}

Comparable across every stage: ``real_nrmse`` (the same real tables throughout). The synthetic validation
tables are drawn from each stage's own prior settings, so ``gaussian_ratio`` / ``scm_*`` shift where a stage
changed its prior (stage 5: more categorical columns, another mix of masks); ``scm_cat_acc`` starts at stage 5.
"""

from __future__ import annotations

import csv
from pathlib import Path

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
# The shipped weights' lineage: (stage, the step its weights were taken at, None = its last row). Each stage
# continued the one before it (init_from); stages 6-10, 12-14, 16-22 and 24 were experiments not adopted (model card).
LINEAGE = ((1, None), (2, None), (3, None), (4, None), (5, None), (11, 2600), (15, 400), (23, 2000), (25, 1500))


def cumulative_rows() -> list[dict]:
    rows, tables, minutes = [], 0.0, 0.0
    for stage, last_step in LINEAGE:
        stage_rows = list(csv.DictReader((CHECKPOINTS / f"curves_stage{stage}.csv").open()))
        if last_step is not None:
            stage_rows = [r for r in stage_rows if int(r["step"]) <= last_step]
            if int(stage_rows[-1]["step"]) != last_step:
                raise ValueError(f"curves_stage{stage}.csv has no row at step {last_step}")
        for r in stage_rows:
            rows.append({"stage": stage, **r, "total_tables": tables + float(r["tables_seen"]),
                         "total_cpu_hours": (minutes + float(r["minutes"])) / 60})
        tables += float(stage_rows[-1]["tables_seen"])
        minutes += float(stage_rows[-1]["minutes"])
    return rows


def main() -> None:
    rows = cumulative_rows()
    fields = ["stage", "step", "total_tables", "total_cpu_hours", "real_nrmse", "gaussian_ratio", "scm_nrmse",
              "scm_cat_acc", "scm_mode_cat_acc"]
    with (CHECKPOINTS / "curves_cumulative.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, key, label in zip(axes, ("real_nrmse", "gaussian_ratio", "scm_cat_acc"),
                              ("real-table NRMSE (same tables all stages)", "Gaussian ratio to the oracle",
                               "SCM categorical accuracy"), strict=True):
        for stage in sorted({r["stage"] for r in rows}):
            pts = [(r["total_tables"], float(r[key])) for r in rows if r["stage"] == stage and r.get(key)]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker=".", label=f"stage {stage}")
        if key != "scm_cat_acc":  # stage 5 only: a linear axis reads better
            ax.set_xscale("log")
        ax.set_xlabel("total tables seen")
        ax.set_title(label)
        ax.legend(fontsize=7)
    hours = rows[-1]["total_cpu_hours"]
    fig.suptitle(f"icl_diffusion_small: {rows[-1]['total_tables']:,.0f} tables, {hours:.1f} CPU-hours (one thread)")
    fig.tight_layout()
    fig.savefig(CHECKPOINTS / "curves_cumulative.png", dpi=80)
    print(f"{len(rows)} points, {rows[-1]['total_tables']:,.0f} tables, {hours:.2f} CPU-hours")


if __name__ == "__main__":
    main()
