"""The on-disk index: a directory that holds everything a search needs, saved atomically.

    INDEX/
      CURRENT             the name of the live version folder, replaced atomically
      v-<stamp>/          one complete version of the index:
        manifest.json     format version, bits, method, counts, feature codec, backend,
                          model fingerprint, sha256 of files
        codes.npy         (N, bits / 8) uint8 packed binary codes  } a local backend's
        features.npy      (N, code size) uint8 re-rank features    } (`index.backends`);
        stage1.faiss      an IVF backend's trained centroids        } milvus keeps keys.npy
        features.codec    the trained FAISS feature codec (`hashsearch.index.features`)
        labels.npy        (N,) int64 or (N, K) multi-hot
        ids.json          N item ids (unique)
        model/            the run's config.yaml, run.json and model.safetensors, so that
                          queries are encoded exactly as the indexed items were

A save writes a new version folder under a temporary name, fsyncs every file
and the folder, renames it into place, then replaces CURRENT by the rename of a
fsynced temporary file: a crash at any moment leaves CURRENT naming either the
old or the new complete version, never a half-written one; a save that fails
with an exception removes what it wrote, so the folder is as it was. The version before
stays one save longer (a reader that resolved CURRENT just before the swap can
still open its files and model); older ones are removed, and a reader that loses
that race anyway reads CURRENT again. Writers take turns on an
exclusive lock (`.lock`), which the system releases when a writer dies.

Files are checked against the manifest, and the manifest's fields against their
types (`hashsearch.index.manifest`), before anything parses them, so a damaged or
foreign directory fails with a clear message instead of a crash.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hashsearch.config import validated
from hashsearch.encoding import Encoded
from hashsearch.errors import HashsearchError
from hashsearch.index.backends import BACKEND_KINDS, LOCAL_KINDS, CodeStore, LocalStore
from hashsearch.index.features import DEFAULT_PQ_BYTES, FeatureCodec
from hashsearch.index.manifest import DATA_FILES, ManifestFields
from hashsearch.index.milvus import MilvusStore
from hashsearch.run import RUN_FILES

FORMAT = "hashsearch-index"
FORMAT_VERSION = 3
MODEL_FILE = "model.safetensors"
CURRENT = "CURRENT"
# what saves create (version folders, their staging names, pointer temporaries): all
# that cleanup may delete, so that a folder a user keeps beside an index is never touched
VERSION_NAME = re.compile(r"(\.tmp-)?v-\d{20}-[0-9a-f]{8}(-CURRENT)?")


def sha256_of(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def model_fingerprint(model_dir: Path) -> str:
    """What identifies a model: the sha256 of its weights file."""
    return sha256_of(model_dir / MODEL_FILE)


@dataclass(frozen=True)
class Backend:
    """Where an index keeps its codes: a local FAISS kind, or a Milvus collection at `uri`."""

    kind: str = "flat"
    uri: str | None = None
    collection: str | None = None

    def build(self, codes: np.ndarray, feature_codes: np.ndarray) -> CodeStore:
        if self.kind not in BACKEND_KINDS:
            raise HashsearchError(
                f"unknown index backend {self.kind!r}; use one of {', '.join(BACKEND_KINDS)}"
            )
        if self.kind in LOCAL_KINDS:
            return LocalStore.build(self.kind, codes, feature_codes)
        if not self.uri:
            raise HashsearchError("the milvus backend needs a URI (--milvus-uri)")
        collection = self.collection or f"hashsearch_{uuid.uuid4().hex[:12]}"
        return MilvusStore.build(self.uri, collection, codes, feature_codes)


FLAT = Backend()


@dataclass
class HashIndex:
    """Binary codes and re-rank features in a backend, plus the labels and ids of the items.

    Attributes:
        store: the backend holding codes and feature codes, searched in stage 1.
        codec: the trained feature codec (float32, float16, int8 or PQ).
        labels: (N,) int64 or (N, K) multi-hot.
        ids: N unique item ids.
        info: manifest fields (bits, method, classes, ...).
        model_dir: the model the items were encoded with, when the index holds one.
    """

    store: CodeStore
    codec: FeatureCodec
    labels: np.ndarray
    ids: list[str]
    info: dict[str, Any]
    model_dir: Path | None = None

    @classmethod
    def build(
        cls,
        encoded: Encoded,
        ids: Sequence[str],
        info: dict[str, Any],
        features: str = "auto",
        pq_bytes: int = DEFAULT_PQ_BYTES,
        backend: Backend = FLAT,
    ) -> HashIndex:
        """Index encoded items; `info` goes into the manifest (method, classes, ...).

        `features` picks how re-rank features are stored (`hashsearch.index.features`),
        `backend` where codes and features live and how stage 1 searches them.
        """
        if len(encoded.codes) != len(ids):
            raise HashsearchError(f"{len(encoded.codes)} codes but {len(ids)} ids")
        shapes = (np.shape(encoded.codes), np.shape(encoded.features))
        if any(len(shape) != 2 or shape[1] < 1 for shape in shapes):
            raise HashsearchError(
                f"codes of shape {shapes[0]} and features of shape {shapes[1]}: expected "
                "(N, bytes) and (N, D), at least one column each"
            )
        check_unique(list(ids))
        codec = FeatureCodec.fit(np.asarray(encoded.features), features, pq_bytes)
        codes = np.ascontiguousarray(encoded.codes, dtype=np.uint8)
        return cls(
            backend.build(codes, codec.encode(encoded.features)),
            codec,
            np.asarray(encoded.labels),
            list(ids),
            dict(info),
        )

    @property
    def bits(self) -> int:
        return int(self.store.bits)

    @property
    def feature_dim(self) -> int:
        return self.codec.dim

    def __len__(self) -> int:
        return len(self.store)

    def codes(self) -> np.ndarray:
        """(N, bits // 8) uint8 packed codes, in index order."""
        return self.store.codes()

    def features(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Re-rank features (unit length) of `rows` (all items if None), decoded to float32."""
        return self.codec.decode(self.store.feature_codes(rows))

    def encoded(self) -> Encoded:
        """The indexed items as `Encoded`, e.g. to evaluate without encoding them again."""
        return Encoded(self.codes(), self.features(), np.asarray(self.labels))

    # -- lifecycle ----------------------------------------------------------------

    def add(self, encoded: Encoded, ids: Sequence[str]) -> None:
        """Append items; their features go through the index's trained codec."""
        ids = list(ids)
        if len(encoded.codes) != len(ids):
            raise HashsearchError(f"{len(encoded.codes)} codes but {len(ids)} ids")
        if encoded.codes.shape[1] * 8 != self.bits or encoded.features.shape[1:] != (
            self.feature_dim,
        ):
            raise HashsearchError(
                f"items of {encoded.codes.shape[1] * 8} bits and features "
                f"{encoded.features.shape[1:]} do not fit the index ({self.bits} bits, "
                f"features ({self.feature_dim},)); encode them with the index's model"
            )
        labels, held = np.asarray(encoded.labels), np.asarray(self.labels)
        if labels.shape[1:] != held.shape[1:] or labels.dtype.kind not in "iu":
            raise HashsearchError(
                f"labels of shape {labels.shape[1:]} and type {labels.dtype} do not match the "
                f"index's {held.shape[1:]}, {held.dtype}: class numbers or multi-hot rows"
            )
        check_unique(self.ids + ids)
        self.store.add(
            np.ascontiguousarray(encoded.codes, dtype=np.uint8), self.codec.encode(encoded.features)
        )
        self.labels = np.concatenate([np.asarray(self.labels), labels])
        self.ids += ids

    def remove(self, ids: Sequence[str]) -> int:
        """Remove items by id, keeping the order of the rest; refuses unknown ids."""
        position = {item: i for i, item in enumerate(self.ids)}
        unknown = [item for item in ids if item not in position]
        if unknown:
            raise HashsearchError(
                f"{len(unknown)} id(s) not in the index, e.g. {unknown[0]!r}; nothing removed"
            )
        keep = np.ones(len(self), bool)
        keep[[position[item] for item in ids]] = False
        self._keep(keep)
        return int((~keep).sum())

    def _keep(self, mask: np.ndarray) -> None:
        self.store.keep(mask)
        self.labels = np.asarray(self.labels)[mask]
        self.ids = [item for item, k in zip(self.ids, mask, strict=True) if k]

    # -- saving and loading -------------------------------------------------------------

    def save(self, directory: Path, model_dir: Path | None = None) -> Path:
        """Write the index as a new version of `directory`, atomically; the version folder.

        The model files of run `model_dir` (or the index's own model) are copied in so
        that queries can be encoded.
        """
        with writer_lock(directory):
            return self._save_locked(directory, model_dir or self.model_dir)

    @classmethod
    @contextmanager
    def editing(cls, directory: Path) -> Iterator[HashIndex]:
        """Load, change and save an index under the writer lock (no lost updates)."""
        current_version(directory)  # refuse a folder that is no index before locking it
        with writer_lock(directory):
            index = cls.load(directory)
            still_held = index.store.reconcile()  # tidy what a crashed edit left
            if not still_held.all():
                index._keep(still_held)
            yield index
            index._save_locked(directory, index.model_dir)

    def _save_locked(self, directory: Path, model_dir: Path | None) -> Path:
        stamp = f"v-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        staging, version = directory / f".tmp-{stamp}", directory / stamp
        live, pointer = directory / CURRENT, directory / f".tmp-{stamp}-{CURRENT}"
        previous = live.read_text().strip() if live.is_file() else None
        try:
            staging.mkdir()
            self._write_version(staging, model_dir)
            staging.rename(version)
            fsync(directory)
            pointer.write_text(stamp + "\n")
            fsync(pointer)
            os.replace(pointer, live)  # the commit point
        except BaseException:  # not committed: leave the folder as it was
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(version, ignore_errors=True)
            pointer.unlink(missing_ok=True)
            raise
        fsync(directory)
        self.model_dir = version / "model" if model_dir is not None else None
        for old in directory.iterdir():
            if old.name not in (stamp, previous) and VERSION_NAME.fullmatch(old.name):
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(True)
        return version

    def _write_version(self, folder: Path, model_dir: Path | None) -> None:
        """Every file of a version into `folder`, the manifest last, all flushed to disk."""
        backend = self.store.write(folder)
        (folder / "features.codec").write_bytes(self.codec.serialize().tobytes())
        np.save(folder / "labels.npy", np.asarray(self.labels))
        (folder / "ids.json").write_text(json.dumps(self.ids))
        names = [*DATA_FILES, *backend.pop("files")]
        fingerprint = {}
        if model_dir is not None:
            (folder / "model").mkdir()
            for name in RUN_FILES:
                shutil.copyfile(model_dir / name, folder / "model" / name)
            names += [f"model/{name}" for name in RUN_FILES]
            fingerprint["model_fingerprint"] = model_fingerprint(folder / "model")
        manifest = {
            **self.info,
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "bits": self.bits,
            "count": len(self),
            "feature_dim": self.feature_dim,
            "feature_codec": self.codec.name,
            "feature_bytes": self.codec.code_size,
            "backend": backend,
            **fingerprint,
            "files": {name: sha256_of(folder / name) for name in names},
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
        for path in folder.rglob("*"):
            fsync(path)
        fsync(folder)

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> HashIndex:
        """Read an index directory, refusing a damaged, foreign or inconsistent one.

        With `mmap` the re-rank features and labels are memory-mapped, not read.
        """
        for _ in range(3):
            pointer = (directory / CURRENT).read_text() if (directory / CURRENT).is_file() else None
            try:
                return cls._load_version(directory, current_version(directory), mmap)
            except (HashsearchError, OSError):
                now = (directory / CURRENT).read_text() if (directory / CURRENT).is_file() else None
                if now == pointer:
                    raise  # damaged, not replaced under our feet
        raise HashsearchError(f"index {directory} keeps changing while being read; try again")

    @classmethod
    def _load_version(cls, directory: Path, version: Path, mmap: bool) -> HashIndex:
        manifest = read_manifest(directory, version)
        backend = manifest["backend"]
        shape = (manifest["bits"], manifest.get("feature_bytes", -1))
        store: CodeStore
        if backend["kind"] == "milvus":
            store = MilvusStore.open(backend, *shape, np.load(version / "keys.npy"))
        else:
            store = LocalStore.open(version, backend, *shape, mmap)
        labels = np.load(version / "labels.npy", mmap_mode="r" if mmap else None)
        ids = json.loads((version / "ids.json").read_text())
        codec = FeatureCodec.deserialize(
            np.frombuffer((version / "features.codec").read_bytes(), np.uint8)
        )
        counts = {len(store), len(labels), len(ids), manifest["count"]}
        shape_ok = (
            codec.dim == manifest["feature_dim"]
            and codec.name == manifest["feature_codec"]
            and codec.code_size == manifest.get("feature_bytes")
        )
        if len(counts) != 1 or not shape_ok:
            raise HashsearchError(
                f"index {directory} is inconsistent with its manifest; "
                "rebuild it with `hashsearch index`"
            )
        info = {k: v for k, v in manifest.items() if k not in ("files", "format")}
        model_dir = version / "model" if (version / "model" / "run.json").is_file() else None
        return cls(store, codec, labels, ids, info, model_dir)


@contextmanager
def writer_lock(directory: Path) -> Iterator[None]:
    """One writer at a time per index folder; the system drops the lock if a writer dies."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def check_unique(ids: list[str]) -> None:
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        duplicate = next(item for item in ids if item in seen or seen.add(item))
        raise HashsearchError(f"item id {duplicate!r} occurs twice; ids must be unique")


def fsync(path: Path) -> None:
    """Flush a file or folder to disk (a rename is durable only once its folder is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_version(directory: Path) -> Path:
    """The live version folder that CURRENT names."""
    pointer = directory / CURRENT
    if not pointer.is_file():
        if (directory / "manifest.json").is_file():
            raise HashsearchError(
                f"index {directory} has format version 1, this hashsearch reads version "
                f"{FORMAT_VERSION}; rebuild it with `hashsearch index`"
            )
        raise HashsearchError(f"{directory} is not a hashsearch index (no {CURRENT} file)")
    name = pointer.read_text().strip()
    version = directory / name
    if not name.startswith("v-") or "/" in name or not version.is_dir():
        raise HashsearchError(
            f"index {directory} is damaged ({CURRENT} names {name!r}); rebuild the index"
        )
    return version


def read_manifest(directory: Path, version: Path | None = None) -> dict[str, Any]:
    """A version's manifest (the live one by default), after checking format, fields, files."""
    version = version or current_version(directory)
    path = version / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        manifest = None
    if not isinstance(manifest, dict):
        raise HashsearchError(f"index manifest {path} is missing or damaged; rebuild the index")
    if manifest.get("format") != FORMAT:
        raise HashsearchError(
            f"{directory} is not a hashsearch index (format {manifest.get('format')!r})"
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise HashsearchError(
            f"index {directory} has format version {manifest.get('format_version')!r}, this "
            f"hashsearch reads version {FORMAT_VERSION}; rebuild it with `hashsearch index`"
        )
    validated(ManifestFields, manifest, f"index manifest {path}", "rebuild the index")
    for name, expected in manifest["files"].items():
        file = version / name
        if not file.is_file() or sha256_of(file) != expected:
            raise HashsearchError(f"index file {file} is missing or damaged; rebuild the index")
    return manifest
