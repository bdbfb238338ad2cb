"""CIFAR-10, from the official python release or from an image-folder copy of it.

The official ``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/`` with pickled
batches (``data_batch_1`` .. ``data_batch_5``, ``test_batch``: a dict with ``b"data"``,
(10000, 3072) uint8 rows of CHW pixels, and ``b"labels"``) and ``batches.meta`` (with
``b"label_names"``). It is read straight from the archive or from its extracted folder,
through `load_array_pickle`, so a crafted pickle cannot run code. Anything else is read
as an image folder (see `hashsearch.data.folder`) and must have the CIFAR-10 classes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from hashsearch.data.cache import cache_dir, cached_dataset
from hashsearch.data.dataset import ImageDataset
from hashsearch.data.decode import check_image_size, resize_images
from hashsearch.data.folder import load_image_folder
from hashsearch.data.safe_pickle import load_array_pickle
from hashsearch.errors import HashsearchError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_CLASSES = tuple("airplane automobile bird cat deer dog frog horse ship truck".split())
_BATCH_FOLDER = "cifar-10-batches-py"
_META = "batches.meta"
_SPLIT_BATCHES = {
    "train": tuple(f"data_batch_{number}" for number in range(1, 6)),
    "test": ("test_batch",),
}
_SIDE = 32
_DOWNLOAD_TIMEOUT_S = 60


def load_cifar10(data: str | Path | None = None, image_size: int | None = None) -> ImageDataset:
    """Load CIFAR-10 (splits ``train``/``test``), decoded through the cache.

    Args:
        data: None to download the official release (once, into the cache folder); the
            official ``.tar.gz`` or its extracted folder; or an image folder / archive
            ``<split>/<class>/<file>`` with the CIFAR-10 class names.
        image_size: resize to ``image_size`` x ``image_size`` (bicubic); default 32x32.
    """
    check_image_size(image_size)
    source = download_cifar10(cache_dir() / "downloads") if data is None else Path(data)
    source = source.expanduser().absolute()
    if not is_official_cifar10(source):
        dataset = load_image_folder(source, image_size)
        if dataset.classes != CIFAR10_CLASSES:
            raise HashsearchError(
                f"{source} is not CIFAR-10: its classes are {', '.join(dataset.classes)}; "
                f"load other image folders as the 'folder' data set"
            )
        return dataclasses.replace(dataset, name="cifar10")
    options = {"loader": "cifar10-python", "image_size": image_size}
    return cached_dataset(source, options, lambda: read_official_cifar10(source, image_size))


def is_official_cifar10(path: Path) -> bool:
    """Whether ``path`` is the official release: its archive, or its extracted folder.

    An archive is recognised by its first member (``cifar-10-batches-py``), which
    costs one header instead of a pass over the whole archive.
    """
    if path.is_dir():
        return (path / _META).is_file() or (path / _BATCH_FOLDER / _META).is_file()
    try:
        with tarfile.open(path, "r:*") as tar:
            first = tar.next()
    except (tarfile.TarError, EOFError, zlib.error, OSError):
        return False  # not an archive: the image-folder loader says what is wrong
    return first is not None and PurePosixPath(first.name).parts[:1] == (_BATCH_FOLDER,)


def read_official_cifar10(source: Path, image_size: int | None = None) -> ImageDataset:
    """Read the official python release (archive or folder) without caching."""
    batches = _read_batches(source)
    classes = _class_names(batches[_META], f"{source}:{_META}")
    by_split = {
        split: _split_arrays(batches, names, source, len(classes))
        for split, names in _SPLIT_BATCHES.items()
    }
    pixels = np.concatenate([images for images, _ in by_split.values()])
    counts = {split: len(labels) for split, (_, labels) in by_split.items()}
    return ImageDataset(
        images=pixels if image_size is None else resize_images(pixels, image_size),
        labels=np.concatenate([labels for _, labels in by_split.values()]),
        classes=classes,
        ids=np.array([f"{split}/{i}" for split, n in counts.items() for i in range(n)]),
        splits=np.array([split for split, n in counts.items() for _ in range(n)]),
        name="cifar10",
    )


def _split_arrays(
    batches: dict[str, Any], names: tuple[str, ...], source: Path, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """The (N, 32, 32, 3) images and (N,) labels of one split's batches, in file order."""
    arrays = [_batch_arrays(batches[name], f"{source}:{name}", num_classes) for name in names]
    return (
        np.concatenate([images for images, _ in arrays]),
        np.concatenate([labels for _, labels in arrays]),
    )


def _read_batches(source: Path) -> dict[str, Any]:
    """The unpickled batch and meta files, by file name; all must be present."""
    wanted = {_META, *(name for names in _SPLIT_BATCHES.values() for name in names)}
    found: dict[str, Any] = {}
    if source.is_dir():
        folder = source if (source / _META).is_file() else source / _BATCH_FOLDER
        for name in sorted(wanted):
            if (folder / name).is_file():
                with (folder / name).open("rb") as file:
                    found[name] = load_array_pickle(file, str(folder / name))
    else:
        found = _read_archive_batches(source, wanted)
    missing = sorted(wanted - found.keys())
    if missing:
        raise HashsearchError(
            f"{source} lacks {', '.join(missing)} of the CIFAR-10 python release; "
            f"re-download it, or pass --data with an image folder"
        )
    return found


def _read_archive_batches(archive: Path, wanted: set[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if member.isfile() and parts[:1] == (_BATCH_FOLDER,) and parts[-1] in wanted:
                    file = tar.extractfile(member)
                    assert file is not None, member.name
                    found[parts[-1]] = load_array_pickle(file, f"{archive}:{member.name}")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise HashsearchError(f"cannot read archive {archive} ({exc}); re-download it") from exc
    return found


def _class_names(meta: Any, name: str) -> tuple[str, ...]:
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not all(isinstance(item, bytes) for item in names):
        raise HashsearchError(f"{name} has no b'label_names' list; re-download the archive")
    return tuple(item.decode("utf-8", errors="replace") for item in names)


def _batch_arrays(batch: Any, name: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32, 3) HWC images and (N,) labels from a batch of (N, 3072) CHW rows."""
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if not _is_pixel_rows(data):
        raise HashsearchError(
            f"{name} is not a CIFAR-10 batch (no (N, 3072) uint8 b'data'); re-download the archive"
        )
    if not (
        isinstance(labels, list)
        and len(labels) == len(data)
        and all(isinstance(label, int) and 0 <= label < num_classes for label in labels)
    ):
        raise HashsearchError(
            f"{name} has no b'labels' list of one class index (0..{num_classes - 1}) per "
            f"image; re-download the archive"
        )
    images = data.reshape(-1, 3, _SIDE, _SIDE).transpose(0, 2, 3, 1)
    return images, np.array(labels, dtype=np.int64)


def _is_pixel_rows(data: Any) -> bool:
    return (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.shape[1:] == (3 * _SIDE * _SIDE,)
    )


def download_cifar10(dest_dir: Path) -> Path:
    """Download the official release into ``dest_dir`` once, checking its md5; its path.

    An existing copy with the right md5 is reused. Without network this fails with a
    message saying how to use a local copy instead.
    """
    target = Path(dest_dir) / CIFAR10_ARCHIVE
    if target.is_file() and file_md5(target) == CIFAR10_MD5:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, partial_name = tempfile.mkstemp(suffix=".part", dir=target.parent)
    os.close(descriptor)
    partial = Path(partial_name)
    try:
        fetch_url(CIFAR10_URL, partial)
        check_md5(partial, CIFAR10_MD5, CIFAR10_URL)
        os.replace(partial, target)
    except OSError as exc:  # urllib's URLError and socket timeouts are OSErrors
        raise HashsearchError(
            f"cannot download CIFAR-10 from {CIFAR10_URL} ({exc}); pass --data PATH with "
            f"a local copy of {CIFAR10_ARCHIVE} or an image folder"
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
    return target


def fetch_url(url: str, destination: Path) -> None:
    """Copy ``url``'s body to ``destination`` (the one place that touches the network)."""
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        with destination.open("wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)


def file_md5(path: Path) -> str:
    """Hex md5 of a file, read in chunks (the archive is 170 MB)."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def check_md5(path: Path, expected: str, origin: str) -> None:
    """Raise if ``path`` (downloaded from ``origin``) does not have md5 ``expected``."""
    actual = file_md5(path)
    if actual != expected:
        raise HashsearchError(
            f"the file downloaded from {origin} has md5 {actual}, not {expected} "
            f"(damaged or changed); retry, or pass --data PATH with a local copy"
        )
