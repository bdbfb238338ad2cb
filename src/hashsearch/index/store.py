"""The on-disk index: a directory that holds everything a search needs.

    INDEX/
      manifest.json     format version, bits, method, counts, sha256 of every file
      codes.faiss       FAISS binary index (IndexBinaryFlat) over packed uint8 codes
      features.npy      (N, D) float32 re-rank features, L2-normalised
      labels.npy        (N,) int64 or (N, K) multi-hot
      ids.json          N item ids (paths inside the source data set)
      model/            the run that made the codes, so queries are encoded identically

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

FORMAT = "hashsearch-index"
FORMAT_VERSION = 1
DATA_FILES = ("codes.faiss", "features.npy", "labels.npy", "ids.json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def l2_normalized(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return (features / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass
class HashIndex:
    """Binary codes in a FAISS index plus the features, labels and ids of the same items.

    Attributes:
        faiss_index: a `faiss.IndexBinary` holding the packed codes.
        features: (N, D) float32, L2-normalised (stage 2 only needs cosine).
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
    def build(
        cls,
        codes: np.ndarray,
        features: np.ndarray,
        labels: np.ndarray,
        ids: list[str],
        info: dict[str, Any],
    ) -> HashIndex:
        """Args: codes: (N, bits // 8) packed uint8; features: (N, D) float."""
        bits = codes.shape[1] * 8
        assert len(codes) == len(features) == len(labels) == len(ids)
        faiss_index = faiss.IndexBinaryFlat(bits)
        faiss_index.add(np.ascontiguousarray(codes, dtype=np.uint8))
        return cls(
            faiss_index,
            l2_normalized(features),
            np.asarray(labels),
            list(ids),
            {**info, "bits": bits},
        )

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
        """The indexed items as `Encoded` (features L2-normalised), e.g. for evaluation."""
        return Encoded(self.codes(), self.features, self.labels)

    def save(self, directory: Path, model_dir: Path | None = None) -> None:
        """Write the index; `model_dir` (a run directory) is copied in for query encoding."""
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index_binary(self.faiss_index, str(directory / "codes.faiss"))
        np.save(directory / "features.npy", self.features)
        np.save(directory / "labels.npy", self.labels)
        (directory / "ids.json").write_text(json.dumps(self.ids))
        if model_dir is not None:
            shutil.copytree(model_dir, directory / "model", dirs_exist_ok=True)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **self.info,
            "bits": self.bits,
            "count": len(self),
            "feature_dim": int(self.features.shape[1]),
            "backend": type(self.faiss_index).__name__,
            "files": {name: sha256_of(directory / name) for name in DATA_FILES},
        }
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))

    @classmethod
    def load(cls, directory: Path) -> HashIndex:
        manifest = read_manifest(directory)
        faiss_index = faiss.read_index_binary(str(directory / "codes.faiss"))
        features = np.load(directory / "features.npy", allow_pickle=False)
        labels = np.load(directory / "labels.npy", allow_pickle=False)
        ids = json.loads((directory / "ids.json").read_text())
        counts = {faiss_index.ntotal, len(features), len(labels), len(ids), manifest["count"]}
        if len(counts) != 1 or faiss_index.d != manifest["bits"]:
            raise HashsearchError(
                f"index {directory} is inconsistent (counts {counts}); rebuild it"
            )
        info = {k: v for k, v in manifest.items() if k not in ("files", "format")}
        return cls(faiss_index, features, labels, ids, info)


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, after checking format, version and every file's checksum."""
    path = directory / "manifest.json"
    if not path.is_file():
        raise HashsearchError(f"{directory} is not a hashsearch index (no manifest.json)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HashsearchError(f"index manifest {path} is damaged; rebuild the index") from None
    if manifest.get("format") != FORMAT:
        raise HashsearchError(
            f"{directory} is not a hashsearch index (format {manifest.get('format')!r})"
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise HashsearchError(
            f"index {directory} has format version {manifest.get('format_version')}, this "
            f"hashsearch reads version {FORMAT_VERSION}; rebuild it with `hashsearch index`"
        )
    for name, expected in manifest.get("files", {}).items():
        file = directory / name
        if not file.is_file() or sha256_of(file) != expected:
            raise HashsearchError(f"index file {file} is missing or damaged; rebuild the index")
    return manifest
