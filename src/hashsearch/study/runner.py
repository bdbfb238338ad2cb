"""Run a study's cells: train (or reuse) each deep run, fit each shallow one, evaluate all.

Everything goes through the pipeline users run: `api.train` with the one trainer,
`encode_images` for codes and features, and `evaluate_retrieval` with every
refinement strategy on the same stage-1 ranking. Each finished cell leaves its
records in `OUT/runs/<cell>/records.json`; a rerun reads them back instead of
redoing the cell, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hashsearch import api
from hashsearch.config import RunConfig, load_run_config, with_overrides
from hashsearch.data.dataset import ImageDataset
from hashsearch.data.protocols import make_splits, query_sample
from hashsearch.encoding import Encoded, encode_images
from hashsearch.errors import HashsearchError
from hashsearch.evaluation import evaluate_retrieval
from hashsearch.presets import preset_config
from hashsearch.robustness import QueryEncoder
from hashsearch.shallow import SHALLOW_METHODS
from hashsearch.study.contestants import CONTESTANTS, FEATURE_SOURCE, Contestant
from hashsearch.study.plan import Cell, StudyPreset

log = logging.getLogger(__name__)

METRICS = ("map_all", "map_1000", "precision_at_100", "precision_at_1000")


@dataclass
class Study:
    """Shared settings of every cell; `run_cell` does one cell, `records` reads them all."""

    preset_name: str
    preset: StudyPreset
    protocol: str
    out: Path
    data: str | None = None
    rerankers: list[str] = field(default_factory=lambda: ["none", "cosine"])
    candidates: int = 1000
    radius: int | None = None
    device: str = "cpu"
    # Per-contestant learning rates chosen on the validation split (`tuning.py`); a
    # contestant not in here trains with the preset's.
    learning_rates: dict[str, float] = field(default_factory=dict)
    _dataset: ImageDataset | None = field(default=None, init=False, repr=False)

    def settings(self) -> dict[str, Any]:
        """What a cell's records depend on besides its run config (checked on reuse)."""
        return {
            "preset": self.preset_name,
            "queries_per_class": self.preset.queries_per_class,
            "rerankers": self.rerankers,
            "candidates": self.candidates,
            "radius": self.radius,
            "protocol": self.protocol,
            "learning_rates": self.learning_rates,
        }

    def run_config(self, cell: Cell) -> RunConfig:
        contestant = CONTESTANTS.get(cell.contestant)
        return preset_config(
            self.preset.base,
            {
                **self.preset.overrides,
                "data.path": self.data,
                "data.protocol": self.protocol,
                "method.name": contestant.method,
                "method.params": contestant.params,
                "method.bits": cell.bits,
                "seed": cell.seed,
                "train.device": self.device,
                **contestant.overrides,
                **(
                    {"train.lr": self.learning_rates[cell.contestant]}
                    if cell.contestant in self.learning_rates
                    else {}
                ),
            },
        )

    def cell_dir(self, cell: Cell) -> Path:
        return self.out / "runs" / cell.name

    def tuning_dir(self, cell: Cell, lr: float) -> Path:
        """Where `tuning.tune_learning_rates` trains `cell` at learning rate `lr`."""
        return self.out / "tuning" / f"{cell.name}-lr{lr:g}"

    def finished(self, cell: Cell, config: RunConfig) -> api.Run | None:
        """`cell` trained with `config`, in its own folder or a learning-rate tuning one.

        A folder that holds the cell at another learning rate (before tuning chose
        this one) is passed over, not an error.
        """
        for directory in (self.cell_dir(cell), self.tuning_dir(cell, config.train.lr)):
            try:
                run = api.finished_run(directory, config)
            except HashsearchError:
                # the cell at another learning rate is passed over; any other difference
                # (a stale run of another preset, a damaged folder) raises here
                api.finished_run(directory, self.at_saved_lr(directory, config))
                continue
            if run is not None:
                return run
        return None

    @staticmethod
    def at_saved_lr(directory: Path, config: RunConfig) -> RunConfig:
        """`config` with the learning rate of the run saved in `directory`."""
        saved = load_run_config(directory / "config.yaml")
        return with_overrides(config, {"train.lr": saved.train.lr})

    def train(self, cell: Cell, config: RunConfig) -> api.Run:
        """Train `cell` into its own folder, or a tuning folder if that one is taken."""
        directory = self.cell_dir(cell)
        if (directory / "model.safetensors").is_file():
            directory = self.tuning_dir(cell, config.train.lr)
            if (directory / "model.safetensors").is_file():  # never overwrite another run
                raise HashsearchError(
                    f"{directory} holds a run with another config; "
                    "remove it or choose another output"
                )
        return api.train(config, directory, progress=False)

    def done(self, cell: Cell) -> list[dict[str, Any]] | None:
        """The cell's saved records if it finished under these settings."""
        path = self.cell_dir(cell) / "records.json"
        if not path.is_file():
            return None
        saved = json.loads(path.read_text())
        return saved["records"] if saved.get("settings") == self.settings() else None

    def run_cell(self, cell: Cell) -> list[dict[str, Any]]:
        """Records of one cell, from its saved copy or by running it now."""
        records = self.done(cell)
        if records is not None:
            return records
        contestant = CONTESTANTS.get(cell.contestant)
        started = time.perf_counter()
        if contestant.kind == "deep":
            query, database, cost = self._deep(cell)
        else:
            query, database, cost = self._shallow(cell, contestant)
        evaluated = time.perf_counter()
        report = evaluate_retrieval(
            query, database, cell.bits, self.candidates, self.radius, self.rerankers
        )
        cost["evaluate_seconds"] = round(time.perf_counter() - evaluated, 2)
        cost["wall_seconds"] = round(time.perf_counter() - started, 1)
        records = self._records(cell, contestant, report, cost)
        saved = {"settings": self.settings(), "records": records}
        write_json(self.cell_dir(cell) / "records.json", saved)
        return records

    # -- deep cells -------------------------------------------------------------------

    def _deep(self, cell: Cell) -> tuple[Encoded, Encoded, dict[str, Any]]:
        config = self.run_config(cell)
        run = self.finished(cell, config) or self.train(cell, config)
        metrics = json.loads((run.directory / "metrics.json").read_text())
        history = metrics["history"]
        started = time.perf_counter()
        query, database = self.encoded(run, "query"), self.encoded(run, "database")
        return (
            query,
            database,
            {
                "train_seconds": round(metrics["train_seconds"], 1),
                "epoch_seconds": round(float(np.mean([r["epoch_seconds"] for r in history])), 2),
                "epochs": len(history),
                "encode_seconds": round(time.perf_counter() - started, 1),
                "config": run.config.model_dump(mode="json"),
            },
        )

    def dataset(self, config: RunConfig) -> ImageDataset:
        if self._dataset is None:
            self._dataset, _ = api.load_data(config)
        return self._dataset

    def split_rows(self, config: RunConfig, split: str) -> np.ndarray:
        """A split's rows; the query split cut to `queries_per_class` per class if set."""
        dataset = self.dataset(config)
        splits = make_splits(dataset, config.data.protocol, config.seed, config.data.val_per_class)
        rows = splits.get(split)
        per_class = self.preset.queries_per_class
        if split == "query" and per_class is not None:
            rows = query_sample(dataset.labels, rows, per_class)
        return rows

    def encoded(self, run: api.Run, split: str) -> Encoded:
        """Codes and features of a split; the feature source keeps them for the shallow cells."""
        per_class = self.preset.queries_per_class if split == "query" else None
        cache = run.directory / f"encoded-{split}{f'-{per_class}' if per_class else ''}.npz"
        if cache.is_file():
            saved = np.load(cache)
            return Encoded(saved["codes"], saved["features"], saved["labels"])
        dataset = self.dataset(run.config)
        rows = self.split_rows(run.config, split)
        encoded = encode_images(
            run.model,
            dataset.images[rows],
            dataset.labels[rows],
            device=run.config.train.device,
            as_queries=split in api.QUERY_SPLITS,
        )
        if run.config.method.name == FEATURE_SOURCE:
            np.savez(cache, **asdict(encoded))
        return encoded

    # -- shallow cells ----------------------------------------------------------------

    def _shallow(
        self, cell: Cell, contestant: Contestant
    ) -> tuple[Encoded, Encoded, dict[str, Any]]:
        source, _, vectors = self.shallow_vectors(cell, contestant)
        started = time.perf_counter()
        hasher = SHALLOW_METHODS.get(contestant.method)(cell.bits, cell.seed)
        hasher.fit(vectors["train"].features)
        fitted = time.perf_counter()
        query, database = (
            Encoded(hasher.encode(v.features), v.features, v.labels)
            for v in (vectors["query"], vectors["database"])
        )
        return (
            query,
            database,
            {
                "train_seconds": round(fitted - started, 2),
                "encode_seconds": round(time.perf_counter() - fitted, 2),
                "config": {
                    "method": contestant.method,
                    "bits": cell.bits,
                    "seed": cell.seed,
                    "vectors": contestant.vectors,
                    "feature_source": source.name if contestant.vectors == "features" else None,
                },
            },
        )

    def shallow_vectors(
        self, cell: Cell, contestant: Contestant
    ) -> tuple[Cell, api.Run | None, dict[str, Encoded]]:
        """What a shallow cell hashes: its feature source cell and run, and the split vectors."""
        source = Cell(FEATURE_SOURCE, cell.bits, cell.seed)
        config = self.run_config(source)
        if contestant.vectors == "pixels":
            return source, None, {s: self.pixels(config, s) for s in ("train", "query", "database")}
        run = self.finished(source, config)
        if run is None:
            raise RuntimeError(f"the feature source {source.name} has not been trained")
        return source, run, {s: self.encoded(run, s) for s in ("train", "query", "database")}

    def cell_encoder(self, cell: Cell) -> tuple[QueryEncoder, Encoded]:
        """How a finished cell encodes new query images, and its encoded database."""
        contestant = CONTESTANTS.get(cell.contestant)
        device = self.device
        if contestant.kind == "deep":
            run = self.finished(cell, self.run_config(cell))
            if run is None:
                raise RuntimeError(f"{cell.name} has not been trained")
            return (
                lambda images, labels: encode_images(
                    run.model, images, labels, device=device, as_queries=True
                ),
                self.encoded(run, "database"),
            )
        _, run, vectors = self.shallow_vectors(cell, contestant)
        hasher = SHALLOW_METHODS.get(contestant.method)(cell.bits, cell.seed)
        hasher.fit(vectors["train"].features)

        def encode(images: np.ndarray, labels: np.ndarray) -> Encoded:
            if run is None:
                features = as_pixel_vectors(images)
            else:
                encoded = encode_images(run.model, images, labels, device=device, as_queries=True)
                features = encoded.features
            return Encoded(hasher.encode(features), features, labels)

        database = vectors["database"]
        return encode, Encoded(hasher.encode(database.features), database.features, database.labels)

    def pixels(self, config: RunConfig, split: str) -> Encoded:
        """Raw pixels as float vectors in [0, 1] (they are also the re-rank features)."""
        dataset = self.dataset(config)
        rows = self.split_rows(config, split)
        flat = as_pixel_vectors(dataset.images[rows])
        return Encoded(np.zeros((len(rows), 0), np.uint8), flat, dataset.labels[rows])

    # -- records ----------------------------------------------------------------------

    def _records(
        self, cell: Cell, contestant: Contestant, report: dict[str, Any], cost: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """One record per refinement strategy ("none" is stage 1)."""
        common = {
            "method": cell.contestant,
            "base_method": contestant.method,
            "kind": contestant.kind,
            "bits": cell.bits,
            "protocol": self.protocol,
            "seed": cell.seed,
            "preset": self.preset_name,
            "queries": report["stage1"]["num_queries"],
            "candidates": self.candidates,
            "radius": self.radius,
            "candidate_recall": report["candidate_set"]["recall"],
            "commit": git_commit(),
            **cost,
        }
        records = []
        for name in self.rerankers:
            metrics = report["stage1"] if name == "none" else report["refinements"][name]
            records.append(
                {
                    **common,
                    "rerank": name,
                    **{k: metrics[k] for k in METRICS},
                    "pr_curve": metrics["pr_curve"],
                }
            )
        return records


def as_pixel_vectors(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 images as (N, H * W * C) float32 vectors in [0, 1]."""
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


@functools.cache
def git_commit() -> str:
    """The checked-out commit (with "+dirty" for uncommitted changes), or "unknown"."""
    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def write_json(path: Path, value: Any) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=1))
    os.replace(temporary, path)
