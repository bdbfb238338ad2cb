"""What a study runs: the grid of (contestant, bits, seed) cells and the budget presets.

The grid is every contestant at every code length with the first seed, plus the
other seeds at `seed_bits` (48: the column reported as mean +- std). Deep cells
come first, so that the SAEH runs whose features the shallow contestants hash
exist before those are fitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hashsearch.registry import Registry
from hashsearch.study.contestants import CONTESTANTS, FEATURE_SOURCE


@dataclass(frozen=True)
class StudyPreset:
    """A training budget shared by every deep contestant.

    Attributes:
        base: the `hashsearch.presets` preset the runs start from.
        overrides: dotted config overrides on top of it (method settings excluded).
        queries_per_class: evaluate on this many query images per class (None: all).
    """

    base: str
    overrides: dict[str, Any] = field(default_factory=dict)
    queries_per_class: int | None = None
    protocol: str = "cifar10-2"


STUDY_PRESETS: Registry[StudyPreset] = Registry("study preset")
# About an hour for the whole default grid on 2 cores (docs/study.md has the timing):
# a narrow net for a few epochs, no flip-averaging, 1,000 queries.
STUDY_PRESETS.register("budget")(
    StudyPreset(
        base="fast-round2",
        overrides={
            "backbone.widths": (32, 64, 64),
            "backbone.blocks": (0, 0, 0),
            "train.epochs": 3,
            "train.eval_every": 3,
            "encode.flip_average": False,
        },
        queries_per_class=100,
    )
)
# The fast preset of recipe round 2 for every method, all 10,000 queries: about 8
# minutes a run (the published study's recipe; `fast` has since moved on).
STUDY_PRESETS.register("full")(StudyPreset(base="fast-round2"))
# The DSH fidelity check: the DSH paper's network and protocol (presets.py, "dsh-paper").
STUDY_PRESETS.register("dsh-paper")(StudyPreset(base="dsh-paper", protocol="dsh"))
# The same, trained 40 epochs instead of 12: does the gap to the paper shrink with training?
STUDY_PRESETS.register("dsh-paper-long")(
    StudyPreset(
        base="dsh-paper", overrides={"train.epochs": 40, "train.eval_every": 5}, protocol="dsh"
    )
)
# Any labelled image folder (`--data DIR`), with the folder recipe and a held-out query
# split: e.g. the digits exported as PNG files (benchmarks/export_digits.py).
STUDY_PRESETS.register("folder")(StudyPreset(base="folder", protocol="holdout"))
# Seconds on scikit-learn's 8x8 digits: for tests and a first look at the outputs.
STUDY_PRESETS.register("tiny")(
    StudyPreset(
        base="digits", overrides={"train.epochs": 3, "train.eval_every": 3}, protocol="holdout"
    )
)


@dataclass(frozen=True)
class Cell:
    contestant: str
    bits: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.contestant}-{self.bits}b-seed{self.seed}"


def study_cells(
    contestants: list[str], bits: list[int], seeds: list[int], seed_bits: int = 48
) -> list[Cell]:
    """Deep cells, then shallow ones; extra seeds only at `seed_bits`."""
    for name in contestants:
        CONTESTANTS.get(name)  # unknown names fail before anything runs
    cells = [
        Cell(name, b, s)
        for name in contestants
        for b in bits
        for s in (seeds if b == seed_bits else seeds[:1])
    ]
    shallow = [c for c in cells if CONTESTANTS.get(c.contestant).kind == "shallow"]
    needs_source = any(CONTESTANTS.get(c.contestant).vectors == "features" for c in shallow)
    if needs_source and FEATURE_SOURCE not in contestants:
        cells += [Cell(FEATURE_SOURCE, c.bits, c.seed) for c in shallow]
    deep = [c for c in cells if CONTESTANTS.get(c.contestant).kind == "deep"]
    return list(dict.fromkeys(deep + shallow))
