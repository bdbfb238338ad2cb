"""The study's tables (results.md) and plots (PNG) from its records.

Records are those `runner.Study.run_cell` writes: one per (method, bits, seed,
refinement). Where a (method, bits, refinement) has several seeds, tables show
mean +- std.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server
import matplotlib.pyplot as plt  # noqa: E402

Record = dict[str, Any]


def grouped(records: Iterable[Record]) -> dict[tuple[str, int, str], list[Record]]:
    """Records by (method, bits, rerank), seeds together."""
    groups: dict[tuple[str, int, str], list[Record]] = defaultdict(list)
    for r in records:
        groups[(r["method"], r["bits"], r["rerank"])].append(r)
    return groups


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def ordered(records: list[Record], key: str) -> list[Any]:
    return list(dict.fromkeys(r[key] for r in records))


def markdown(records: list[Record], title: str) -> str:
    """results.md: mAP@all per method x bits with every refinement, then mAP@1000 and P@100."""
    methods, bits, reranks = (ordered(records, k) for k in ("method", "bits", "rerank"))
    groups = grouped(records)
    lines = [f"# {title}", ""]
    for metric, label in (
        ("map_all", "mAP@all"),
        ("map_1000", "mAP@1000"),
        ("precision_at_100", "precision@100"),
    ):
        lines += [
            f"## {label}",
            "",
            "Columns: code length, then refinement (`none` is stage 1).",
            "",
        ]
        header = ["method"] + [f"{b} bits {r}" for b in bits for r in reranks]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for m in methods:
            cells = [
                mean_std([g[metric] for g in groups[(m, b, r)]]) if (m, b, r) in groups else ""
                for b in bits
                for r in reranks
            ]
            lines.append("| " + " | ".join([m, *cells]) + " |")
        lines.append("")
    lines += cost_table(records, methods, bits)
    return "\n".join(lines)


def cost_table(records: list[Record], methods: list[str], bits: list[int]) -> list[str]:
    """Training time, stage-1 candidate recall and seeds per method and code length."""
    groups, first = grouped(records), records[0]["rerank"]
    lines = [
        "## Cost and candidate recall",
        "",
        "Training (or fitting) seconds, and the share of all relevant items that stage 1 "
        "passes to stage 2, per code length; seeds in brackets.",
        "",
        "| method | " + " | ".join(f"{b} bits" for b in bits) + " |",
        "|---|" + "---|" * len(bits),
    ]
    for m in methods:
        cells = []
        for b in bits:
            group = groups.get((m, b, first), [])
            if not group:
                cells.append("")
                continue
            seconds = statistics.mean(g["train_seconds"] for g in group)
            recall = statistics.mean(g["candidate_recall"] for g in group)
            cells.append(f"{seconds:.0f} s, recall {recall:.3f} ({len(group)})")
        lines.append("| " + " | ".join([m, *cells]) + " |")
    return lines + [""]


def line_styles(records: list[Record]) -> dict[str, dict[str, Any]]:
    """One colour per method (20 distinct), dashed lines for the shallow baselines."""
    kinds = {r["method"]: r.get("kind", "deep") for r in records}
    palette = plt.get_cmap("tab20")
    return {
        m: {"color": palette(i % 20), "linestyle": "--" if kinds[m] == "shallow" else "-"}
        for i, m in enumerate(kinds)
    }


def plots(records: list[Record], out: Path, focus_bits: int = 48) -> list[Path]:
    """mAP vs bits, PR and precision@k curves at `focus_bits`, refinement gains; the paths."""
    out.mkdir(parents=True, exist_ok=True)
    groups = grouped(records)
    methods, bits, reranks = (ordered(records, k) for k in ("method", "bits", "rerank"))
    focus = focus_bits if focus_bits in bits else bits[-1]
    styles = line_styles(records)
    paths = []

    columns = min(3, len(reranks))
    rows = -(-len(reranks) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.5 * columns, 3.8 * rows), sharey=True, squeeze=False
    )
    for ax in axes.flat[len(reranks) :]:
        ax.axis("off")
    for ax, rerank in zip(axes.flat, reranks, strict=False):
        for m in methods:
            xs = [b for b in bits if (m, b, rerank) in groups]
            ys = [statistics.mean(g["map_all"] for g in groups[(m, b, rerank)]) for b in xs]
            ax.plot(xs, ys, marker="o", label=m, **styles[m])
        ax.set(title=f"refinement: {rerank}", xlabel="bits", xticks=bits)
    for ax in axes[:, 0]:
        ax.set_ylabel("mAP@all")
    axes.flat[0].legend(fontsize=7)
    paths.append(save(figure, out / "map_vs_bits.png"))

    stage = reranks[0]
    for name, x_key, y_key, xlabel, ylabel in (
        ("pr_curve", "recall", "precision", "recall", "precision"),
        ("precision_at_k", "cutoffs", "precision", "k (items returned)", "precision@k"),
    ):
        figure, ax = plt.subplots(figsize=(6, 4.5))
        for m in methods:
            group = groups.get((m, focus, stage))
            if group:
                curve = group[0]["pr_curve"]
                ax.plot(curve[x_key], curve[y_key], label=m, **styles[m])
        if x_key == "cutoffs":
            ax.set_xscale("log")
        ax.set(
            title=f"{focus} bits, {stage}, seed {records[0]['seed']}", xlabel=xlabel, ylabel=ylabel
        )
        ax.legend(fontsize=7)
        paths.append(save(figure, out / f"{name}_{focus}b.png"))

    figure, ax = plt.subplots(figsize=(max(6, len(methods)), 4))
    refinements = reranks[1:]
    width = 0.8 / max(1, len(refinements))

    def mean_map(method: str, rerank: str) -> float:
        group = groups.get((method, focus, rerank))
        return statistics.mean(g["map_all"] for g in group) if group else float("nan")

    for i, rerank in enumerate(refinements):
        gains = [mean_map(m, rerank) - mean_map(m, stage) for m in methods]
        ax.bar([j + i * width for j in range(len(methods))], gains, width, label=rerank)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(methods))], methods, rotation=30)
    ax.set(ylabel=f"mAP@all gain over {stage}", title=f"refinement gain at {focus} bits")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend(fontsize=7)
    paths.append(save(figure, out / f"refinement_gain_{focus}b.png"))
    return paths


def save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
