"""A cache of decoded data sets, so 60,000 JPEGs are decoded once, not on every run.

An entry is a folder ``<cache>/<key>/`` with ``images.npy`` (opened as a read-only
memmap: a warm load reads only the pages a run touches), ``labels.npy`` and
``meta.json`` (classes, ids, splits, name). The key hashes the source's absolute path,
size and mtime (for a directory: of every file below it), the loader's options and
`CACHE_FORMAT`, so editing the source, changing an option or changing the layout
written here all miss the old entry instead of returning stale pixels.

Entries are written to a hidden temporary folder and renamed into place, so an
interrupted run leaves at worst a ``.<key>.*.tmp`` folder (safe to delete), never a
half entry; an entry that fails to load is deleted and rebuilt, not trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from hashsearch.data.dataset import ImageDataset

# Bump when the entry layout or any loader's output for the same input changes.
CACHE_FORMAT = 1

CacheOptions = Mapping[str, str | int | None]


class _DamagedEntry(Exception):
    """A cache entry that is incomplete or inconsistent."""


def cache_dir() -> Path:
    """``$HASHSEARCH_CACHE`` if set, else ``~/.cache/hashsearch``."""
    configured = os.environ.get("HASHSEARCH_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "hashsearch"


def cache_key(source: Path, options: CacheOptions) -> str:
    """The entry name for ``source`` loaded with ``options``: readable prefix, then a hash."""
    source = source.absolute()
    identity = {
        "cache_format": CACHE_FORMAT,
        "path": str(source),
        "source": _source_fingerprint(source),
        "options": dict(options),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", source.name)[:40]
    return f"{readable}-{digest[:24]}"


def _source_fingerprint(source: Path) -> dict[str, int | str]:
    """Size and mtime of a file; for a directory a hash of those of every file below it,
    since editing a file inside a folder does not change the folder's own mtime."""
    if not source.is_dir():
        stat = source.stat()
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    digest = hashlib.sha256()
    for root, subdirs, names in os.walk(source):
        subdirs.sort()
        for name in sorted(names):
            path = Path(root, name)
            stat = path.stat() if path.exists() else path.lstat()  # a dangling link: its own
            relative = path.relative_to(source).as_posix()
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return {"tree": digest.hexdigest()}


def cached_dataset(
    source: Path, options: CacheOptions, build: Callable[[], ImageDataset]
) -> ImageDataset:
    """The data set ``build()`` makes from ``source``, from the cache when it holds it.

    On a miss (or a damaged entry) ``build`` runs and its result is stored, then read
    back, so a cold and a warm run return the same kind of arrays (a read-only memmap).
    A cache that cannot be written only costs speed: the built data set is returned.
    """
    entry = cache_dir() / cache_key(source, options)
    if entry.exists():
        try:
            return read_entry(entry)
        except _DamagedEntry:
            shutil.rmtree(entry, ignore_errors=True)
    dataset = build()
    try:
        write_entry(dataset, entry)
        return read_entry(entry)
    except (OSError, _DamagedEntry) as exc:
        warnings.warn(
            f"could not store the decode cache in {entry} ({exc}); the next run decodes "
            f"again; set HASHSEARCH_CACHE to a writable folder",
            stacklevel=2,
        )
        return dataset


def write_entry(dataset: ImageDataset, entry: Path) -> None:
    """Store ``dataset`` as ``entry`` atomically: complete under its final name, or absent."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent))
    try:
        np.save(temporary / "images.npy", np.ascontiguousarray(dataset.images))
        np.save(temporary / "labels.npy", dataset.labels)
        meta = {
            "cache_format": CACHE_FORMAT,
            "name": dataset.name,
            "count": len(dataset),
            "classes": list(dataset.classes),
            "ids": [str(item) for item in dataset.ids],
            "splits": [str(split) for split in dataset.splits],
        }
        (temporary / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(temporary, entry)
        except OSError:
            if not entry.is_dir():
                raise
            shutil.rmtree(temporary)  # another process stored the same entry first
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def read_entry(entry: Path) -> ImageDataset:
    """Load a stored entry, raising `_DamagedEntry` if any part is missing or inconsistent."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        images = np.load(entry / "images.npy", mmap_mode="r")
        labels = np.load(entry / "labels.npy")
        consistent = (
            meta["cache_format"] == CACHE_FORMAT
            and images.dtype == np.uint8
            and images.ndim == 4
            and images.shape[3] in (1, 3)
            and labels.ndim in (1, 2)
            and meta["count"] == len(images) == len(labels) == len(meta["ids"])
            and meta["count"] == len(meta["splits"])
        )
        if not consistent:
            raise _DamagedEntry(f"inconsistent cache entry {entry}")
        return ImageDataset(
            images=images,
            labels=labels,
            classes=tuple(meta["classes"]),
            ids=np.array(meta["ids"], dtype=str),
            splits=np.array(meta["splits"], dtype=str),
            name=meta["name"],
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _DamagedEntry(f"unreadable cache entry {entry}: {exc}") from exc
