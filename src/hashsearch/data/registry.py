"""Data sets by name, as the CLI and configuration files refer to them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hashsearch.data.cifar10 import load_cifar10
from hashsearch.data.dataset import ImageDataset
from hashsearch.data.digits import load_digits_dataset
from hashsearch.data.folder import load_image_folder
from hashsearch.data.listfile import load_list_file
from hashsearch.errors import HashsearchError


def _load_digits(data: Path | None, image_size: int | None) -> ImageDataset:
    if data is not None:
        raise HashsearchError(
            f"the digits data set is bundled with scikit-learn and reads no file, got "
            f"--data {data}; drop --data, or use --dataset folder to load {data}"
        )
    return load_digits_dataset(image_size)


def _load_folder(data: Path | None, image_size: int | None) -> ImageDataset:
    if data is None:
        raise HashsearchError(
            "the folder data set needs --data PATH: an image folder, or a .tar.gz of one"
        )
    return load_image_folder(data, image_size)


def _load_list(data: Path | None, image_size: int | None) -> ImageDataset:
    if data is None:
        raise HashsearchError("the list data set needs --data FILE: lines `path 0 1 ...`")
    return load_list_file(data, image_size)


_LOADERS: dict[str, Callable[[Path | None, int | None], ImageDataset]] = {
    "digits": _load_digits,
    "cifar10": load_cifar10,
    "folder": _load_folder,
    "list": _load_list,
}


def list_datasets() -> tuple[str, ...]:
    """The names `load_dataset` knows."""
    return tuple(_LOADERS)


def load_dataset(
    name: str, data: str | Path | None = None, image_size: int | None = None
) -> ImageDataset:
    """Load data set ``name`` from ``data`` (a path; None for a built-in or downloaded copy).

    Args:
        name: one of `list_datasets` (``digits``, ``cifar10``, ``folder``, ``list``).
        data: where to read it from; ``folder`` and ``list`` need it, ``digits`` takes none.
        image_size: resize every image to ``image_size`` x ``image_size``.
    """
    loader = _LOADERS.get(name)
    if loader is None:
        raise HashsearchError(f"unknown data set {name!r}; use one of {', '.join(list_datasets())}")
    return loader(None if data is None else Path(data), image_size)
