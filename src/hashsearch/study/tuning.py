"""Per-method learning rates chosen on the validation split, before the grid runs.

One shared learning rate favours the method it was tuned for (SAEH's recipe). For
each deep contestant this trains one cell (the study's budget, one code length,
one seed) per candidate learning rate and keeps the rate with the best
validation mAP, the same criterion that picks the epoch. The query split plays
no part. Runs are kept (the grid's cell reuses the one at the chosen rate) and choices
go to OUT/tuning/choices.json, so a rerun reuses them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hashsearch.config import with_overrides
from hashsearch.errors import HashsearchError, TrainingDiverged
from hashsearch.study.contestants import CONTESTANTS
from hashsearch.study.plan import Cell
from hashsearch.study.runner import Study, write_json

log = logging.getLogger(__name__)


def tune_learning_rates(
    study: Study, contestants: list[str], rates: list[float], bits: int, seed: int
) -> dict[str, dict[str, Any]]:
    """{contestant: {"lr": chosen, "val_map_all": {lr: best validation mAP}}} for deep ones."""
    choices: dict[str, dict[str, Any]] = {}
    for name in contestants:
        if CONTESTANTS.get(name).kind != "deep":
            continue
        scores = {}
        for lr in rates:
            cell = Cell(name, bits, seed)
            config = with_overrides(study.run_config(cell), {"train.lr": lr})
            try:
                run = study.finished(cell, config) or study.train(cell, config)
            except TrainingDiverged as exc:
                scores[f"{lr:g}"] = None  # a rate that diverges is never chosen
                log.info("tuning %s lr %g: %s", name, lr, exc)
                continue
            history = json.loads((run.directory / "metrics.json").read_text())["history"]
            scores[f"{lr:g}"] = max(r["val_map_all"] for r in history if "val_map_all" in r)
            log.info("tuning %s lr %g: validation mAP %.4f", name, lr, scores[f"{lr:g}"])
        usable = {k: v for k, v in scores.items() if v is not None}
        if not usable:
            raise TrainingDiverged(f"{name} diverged at every learning rate in {rates}")
        best = max(usable, key=lambda k: usable[k])
        choices[name] = {"lr": float(best), "val_map_all": scores, "bits": bits, "seed": seed}
    write_json(study.out / "tuning" / "choices.json", choices)
    return choices


def read_choices(path: Path) -> dict[str, dict[str, Any]]:
    """Learning-rate choices another study made (its tuning/choices.json), to reuse."""
    try:
        choices = json.loads(path.read_text())
        if not all(isinstance(c["lr"], int | float) for c in choices.values()):
            raise TypeError
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise HashsearchError(
            f"{path} is not a study's learning-rate choices (tuning/choices.json): {exc}"
        ) from exc
    return choices
