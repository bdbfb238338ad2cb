"""How each contestant holds up when the query images are corrupted (the database stays clean).

`hashsearch bench --corruptions` runs, for each finished cell of a study, the
query split as it is ("clean") and under every corruption of
`hashsearch.data.corruptions` at severities 1-3, and scores stage 1 and
two-stage (cosine re-ranking) mAP@all with the study's one evaluation. Each
cell's records are saved beside its run (`robustness.json`), so a rerun resumes.

OUT/robustness.json   records: method, bits, seed, corruption, severity, stage, map_all
OUT/robustness.md     mAP per method x corruption at each severity, and the ratio to clean
OUT/robustness.png    mean two-stage mAP over the corruptions against severity, per method
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

from hashsearch.data.corruptions import SEVERITIES
from hashsearch.robustness import STAGES, Record, corruption_records
from hashsearch.study.plan import Cell
from hashsearch.study.runner import Study, write_json

matplotlib.use("Agg")  # files only: no display on a server
import matplotlib.pyplot as plt  # noqa: E402


def cell_robustness(study: Study, cell: Cell, corruptions: list[str]) -> list[Record]:
    """One cell's records: clean, then every corruption x severity, both stages."""
    path = study.cell_dir(cell) / "robustness.json"
    settings = {**study.settings(), "corruptions": corruptions}
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("settings") == settings:
            return saved["records"]
    study.run_cell(cell)  # trains the cell if it has not been
    encode, database = study.cell_encoder(cell)
    config = study.run_config(cell)
    dataset = study.dataset(config)
    rows = study.split_rows(config, "query")
    found = corruption_records(
        encode,
        database,
        dataset.images[rows],
        dataset.labels[rows],
        cell.bits,
        corruptions,
        study.candidates,
        seed=cell.seed,
    )
    cell_fields = {
        "method": cell.contestant,
        "bits": cell.bits,
        "seed": cell.seed,
        "protocol": study.protocol,
        "preset": study.preset_name,
    }
    records = [{**cell_fields, **record} for record in found]
    write_json(path, {"settings": settings, "records": records})
    return records


def run_robustness(
    study: Study, cells: list[Cell], corruptions: list[str]
) -> tuple[list[Record], dict[str, Path]]:
    """Every cell's robustness records, then the table and the plot; records and files."""
    records = [r for cell in cells for r in cell_robustness(study, cell, corruptions)]
    write_json(study.out / "robustness.json", records)
    (study.out / "robustness.md").write_text(robustness_markdown(records))
    figure = robustness_plot(records, study.out / "robustness.png")
    return records, {
        "records": study.out / "robustness.json",
        "table": study.out / "robustness.md",
        "plot": figure,
    }


def mean_map(records: list[Record], **where: Any) -> float:
    """Mean mAP@all over the records matching `where` (seeds, and corruptions if not given)."""
    values = [r["map_all"] for r in records if all(r[k] == v for k, v in where.items())]
    return statistics.mean(values) if values else float("nan")


def robustness_markdown(records: list[Record]) -> str:
    """Per stage: mAP per method x corruption at each severity, and mean ratio to clean."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    corruptions = list(dict.fromkeys(r["corruption"] for r in records if r["severity"]))
    lines = ["# Robustness to corrupted queries", ""]
    for stage in STAGES:
        lines += [f"## {stage}: mAP@all (severity 1 / 2 / 3), mean over seeds", ""]
        header = ["method", "clean", *corruptions, "severity-3 mean / clean"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for method in methods:
            mine = [r for r in records if r["method"] == method and r["stage"] == stage]
            clean = mean_map(mine, corruption="clean")
            cells = [
                " / ".join(f"{mean_map(mine, corruption=c, severity=s):.3f}" for s in SEVERITIES)
                for c in corruptions
            ]
            ratio = mean_map(mine, severity=SEVERITIES[-1]) / clean
            lines.append(f"| {method} | {clean:.4f} | " + " | ".join(cells) + f" | {ratio:.3f} |")
        lines.append("")
    return "\n".join(lines)


def robustness_plot(records: list[Record], path: Path) -> Path:
    """Two-stage mAP@all averaged over the corruptions, against severity (0 = clean)."""
    by_method: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if r["stage"] == "two_stage":
            by_method[r["method"]].append(r)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    levels = [0, *SEVERITIES]
    for method, mine in by_method.items():
        values = [mean_map(mine, severity=s) for s in levels]
        axes.plot(levels, values, marker="o", label=method)
    axes.set(xlabel="severity (0 = clean)", ylabel="two-stage mAP@all", xticks=levels)
    axes.set_title("Corrupted queries, clean database: mean over corruptions")
    axes.legend(fontsize=7, ncol=2)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def severity_ratio(records: list[Record], method: str, stage: str = "two_stage") -> float:
    """Mean mAP over the corruptions at the top severity, over clean mAP (the issue's goal)."""
    mine = [r for r in records if r["method"] == method and r["stage"] == stage]
    return mean_map(mine, severity=SEVERITIES[-1]) / mean_map(mine, severity=0)
