"""Human-readable views of an evaluation report: a table and a precision-recall plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

ROWS = (
    "map_all",
    "map_1000",
    "precision_at_10",
    "precision_at_100",
    "precision_at_1000",
    "precision_radius_2",
)


def metrics_table(report: dict[str, Any], title: str = "retrieval quality") -> Table:
    """Rows: metrics; columns: stage 1 and two-stage (when present)."""
    stages = [s for s in ("stage1", "two_stage") if s in report]
    table = Table(title=title)
    table.add_column("metric")
    for stage in stages:
        table.add_column(
            "stage 1 (Hamming)" if stage == "stage1" else "two-stage (re-ranked)", justify="right"
        )
    for row in ROWS:
        if all(row in report[s] for s in stages):
            table.add_row(row, *(f"{report[s][row]:.4f}" for s in stages))
    return table


def plot_pr_curve(report: dict[str, Any], path: Path) -> Path:
    """Precision against recall at rank cutoffs, one line per stage, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    for stage, label in (("stage1", "stage 1 (Hamming)"), ("two_stage", "two-stage")):
        if stage in report:
            curve = report[stage]["pr_curve"]
            ax.plot(curve["recall"], curve["precision"], marker=".", label=label)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
