"""The on-disk index: a directory that holds everything a search needs.

    INDEX/
      manifest.json     format version, bits, method, counts, sha256 of every file
      codes.faiss       FAISS binary index (IndexBinaryFlat) over packed uint8 codes
      features.npy      (N, D) float32 re-rank features, as the encoder gave them
      labels.npy        (N,) int64 or (N, K) multi-hot
      ids.json          N item ids (paths inside the source data set)
      model/            the run's config.yaml, run.json and model.safetensors, so that
                        queries are encoded exactly as the indexed items were

Files are checked against the manifest before anything parses them, so a
damaged or foreign directory fails with a clear message instead of a crash.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from hashsearch.encoding import Encoded
from hashsearch.errors import HashsearchError
from hashsearch.run import RUN_FILES

FORMAT = "hashsearch-index"
FORMAT_VERSION = 1
BACKEND = "IndexBinaryFlat"
DATA_FILES = ("codes.faiss", "features.npy", "labels.npy", "ids.json")
REQUIRED_KEYS = ("bits", "count", "feature_dim", "backend", "files")


def sha256_of(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass
class HashIndex:
    """Binary codes in a FAISS index plus the features, labels and ids of the same items.

    Attributes:
        faiss_index: a `faiss.IndexBinaryFlat` holding the packed codes.
        features: (N, D) float32 re-rank features.
        labels: (N,) int64 or (N, K) multi-hot.
        ids: N item ids.
        info: manifest fields (bits, method, classes, ...).
    """

    faiss_index: Any
    features: np.ndarray
    labels: np.ndarray
    ids: list[str]
    info: dict[str, Any]

    @classmethod
    def build(cls, encoded: Encoded, ids: list[str], info: dict[str, Any]) -> HashIndex:
        """Index encoded items; `info` goes into the manifest (method, classes, ...)."""
        assert len(encoded.codes) == len(ids), (len(encoded.codes), len(ids))
        faiss_index = faiss.IndexBinaryFlat(encoded.codes.shape[1] * 8)
        faiss_index.add(np.ascontiguousarray(encoded.codes, dtype=np.uint8))
        features = np.ascontiguousarray(encoded.features, dtype=np.float32)
        return cls(faiss_index, features, np.asarray(encoded.labels), list(ids), dict(info))

    @property
    def bits(self) -> int:
        return int(self.faiss_index.d)

    def __len__(self) -> int:
        return int(self.faiss_index.ntotal)

    def codes(self) -> np.ndarray:
        """(N, bits // 8) uint8, read back from FAISS."""
        flat = faiss.vector_to_array(self.faiss_index.xb)
        return flat.reshape(len(self), self.bits // 8)

    def encoded(self) -> Encoded:
        """The indexed items as `Encoded`, e.g. to evaluate without encoding them again."""
        return Encoded(self.codes(), self.features, self.labels)

    def save(self, directory: Path, model_dir: Path | None = None) -> None:
        """Write the index; the model files of run `model_dir` are copied in for queries."""
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index_binary(self.faiss_index, str(directory / "codes.faiss"))
        np.save(directory / "features.npy", self.features)
        np.save(directory / "labels.npy", self.labels)
        (directory / "ids.json").write_text(json.dumps(self.ids))
        names = list(DATA_FILES)
        if model_dir is not None:
            (directory / "model").mkdir(exist_ok=True)
            for name in RUN_FILES:
                shutil.copyfile(model_dir / name, directory / "model" / name)
            names += [f"model/{name}" for name in RUN_FILES]
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **self.info,
            "bits": self.bits,
            "count": len(self),
            "feature_dim": int(self.features.shape[1]),
            "backend": type(self.faiss_index).__name__,
            "files": {name: sha256_of(directory / name) for name in names},
        }
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))

    @classmethod
    def load(cls, directory: Path) -> HashIndex:
        """Read an index directory, refusing a damaged, foreign or inconsistent one."""
        manifest = read_manifest(directory)
        faiss_index = faiss.read_index_binary(str(directory / "codes.faiss"))
        features = np.load(directory / "features.npy", allow_pickle=False)
        labels = np.load(directory / "labels.npy", allow_pickle=False)
        ids = json.loads((directory / "ids.json").read_text())
        counts = {faiss_index.ntotal, len(features), len(labels), len(ids), manifest["count"]}
        shape_ok = faiss_index.d == manifest["bits"] and features.shape[1:] == (
            manifest["feature_dim"],
        )
        if len(counts) != 1 or not shape_ok or type(faiss_index).__name__ != BACKEND:
            raise HashsearchError(
                f"index {directory} is inconsistent with its manifest; "
                "rebuild it with `hashsearch index`"
            )
        info = {k: v for k, v in manifest.items() if k not in ("files", "format")}
        return cls(faiss_index, features, labels, ids, info)


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, after checking format, version, fields and every file's checksum."""
    path = directory / "manifest.json"
    if not path.is_file():
        raise HashsearchError(f"{directory} is not a hashsearch index (no manifest.json)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        manifest = None
    if not isinstance(manifest, dict):
        raise HashsearchError(f"index manifest {path} is damaged; rebuild the index")
    if manifest.get("format") != FORMAT:
        raise HashsearchError(
            f"{directory} is not a hashsearch index (format {manifest.get('format')!r})"
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise HashsearchError(
            f"index {directory} has format version {manifest.get('format_version')}, this "
            f"hashsearch reads version {FORMAT_VERSION}; rebuild it with `hashsearch index`"
        )
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    missing += [f for f in DATA_FILES if f not in manifest.get("files", {})]
    if manifest.get("backend", BACKEND) != BACKEND:
        missing.append(f"a {BACKEND} backend")
    if missing:
        raise HashsearchError(
            f"index manifest {path} lacks {', '.join(missing)}; rebuild the index"
        )
    for name, expected in manifest["files"].items():
        file = directory / name
        if not file.is_file() or sha256_of(file) != expected:
            raise HashsearchError(f"index file {file} is missing or damaged; rebuild the index")
    return manifest
