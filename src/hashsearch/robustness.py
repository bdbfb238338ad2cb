"""Retrieval with corrupted queries against a clean database (design document: noise,
variations and domain shift are what hashing must withstand).

Every corruption of `hashsearch.data.corruptions` at severities 1-3, plus the
clean queries, through the one evaluation (`evaluate_retrieval`), for stage 1
and for two-stage search (cosine re-ranking). `hashsearch evaluate --corruptions`
runs it for one run, `hashsearch bench --corruptions` for every study cell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hashsearch.data.corruptions import SEVERITIES, corrupt
from hashsearch.encoding import Encoded
from hashsearch.evaluation import evaluate_retrieval

Record = dict[str, Any]
QueryEncoder = Callable[[np.ndarray, np.ndarray], Encoded]  # (images, labels) -> Encoded
STAGES = {"stage1": "none", "two_stage": "cosine"}  # stage -> the refinement scored


def corruption_records(
    encode: QueryEncoder,
    database: Encoded,
    images: np.ndarray,
    labels: np.ndarray,
    bits: int,
    corruptions: list[str],
    candidates: int = 1000,
    seed: int = 0,
) -> list[Record]:
    """mAP@all of stage 1 and two-stage, clean and under each corruption x severity.

    Args:
        encode: turns (N, H, W, C) uint8 query images and their labels into `Encoded`.
        database: the clean database, encoded. images, labels: the clean queries.
    Returns: records with corruption ("clean" or a name), severity (0 for clean),
        stage ("stage1" or "two_stage"), map_all, queries.
    """
    conditions = [("clean", 0)] + [(c, s) for c in corruptions for s in SEVERITIES]
    records = []
    for name, severity in conditions:
        shown = images if name == "clean" else corrupt(images, name, severity, seed=seed)
        report = evaluate_retrieval(
            encode(shown, labels), database, bits, candidates, None, ["cosine"]
        )
        for stage, rerank in STAGES.items():
            metrics = report["stage1"] if rerank == "none" else report["refinements"][rerank]
            records.append(
                {
                    "corruption": name,
                    "severity": severity,
                    "stage": stage,
                    "map_all": metrics["map_all"],
                    "queries": len(images),
                }
            )
    return records
