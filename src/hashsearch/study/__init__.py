"""The comparative study behind `hashsearch bench`: every contestant, code length and seed
through one trainer and one evaluation, then tables and plots.

OUT/
  runs/<method>-<bits>b-seed<seed>/   each deep run, and every cell's records.json
  results.json                        every record (method, bits, protocol, rerank, seed, ...)
  results.md                          the tables
  *.png                               the plots
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hashsearch.study.contestants import CONTESTANTS, Contestant
from hashsearch.study.plan import STUDY_PRESETS, Cell, StudyPreset, study_cells
from hashsearch.study.report import markdown, plots
from hashsearch.study.runner import Study, write_json

__all__ = [
    "CONTESTANTS",
    "STUDY_PRESETS",
    "Cell",
    "Contestant",
    "Study",
    "StudyPreset",
    "run_study",
    "study_cells",
    "study_from_names",
]

log = logging.getLogger(__name__)


def run_study(study: Study, cells: list[Cell], progress: bool = True) -> dict[str, Any]:
    """Run (or read back) every cell, writing results.json after each; then tables and plots."""
    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    bar = tqdm(cells, desc="study", unit="cell", disable=None if progress else True)
    for cell in bar:
        bar.set_postfix_str(cell.name)
        cached = study.done(cell) is not None
        cell_records = study.run_cell(cell)
        records += cell_records
        write_json(study.out / "results.json", records)
        summary = ", ".join(f"{r['rerank']} {r['map_all']:.4f}" for r in cell_records)
        log.info("%s%s: mAP@all %s", cell.name, " (saved)" if cached else "", summary)
    title = f"hashsearch study: {study.protocol}, preset {study.preset_name}"
    (study.out / "results.md").write_text(markdown(records, title))
    figures = plots(records, study.out)
    return {
        "records": len(records),
        "results": study.out / "results.json",
        "tables": study.out / "results.md",
        "plots": figures,
        "seconds": time.perf_counter() - started,
    }


def study_from_names(
    preset: str, out: Path, data: str | None, protocol: str | None, **settings: Any
) -> Study:
    """A `Study` from a study preset name, with the preset's protocol unless one is given."""
    chosen: StudyPreset = STUDY_PRESETS.get(preset)
    return Study(preset, chosen, protocol or chosen.protocol, out, data, **settings)
