"""The pixels of indexed items, looked up by id: for the web page and contact sheets.

An id is honoured only when the index holds it, so no path a client sends ever
reaches the file system. Items of the data set the index's run names come from
that data set (loaded once, on first use; a memmap of the decode cache); items
added with `hashsearch index-add` have their file's path as id, and that file is
read because the index, not the request, named it.
"""

from __future__ import annotations

import io
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from hashsearch.config import RunConfig
from hashsearch.data import load_dataset
from hashsearch.data.dataset import ImageDataset
from hashsearch.data.decode import decode_image
from hashsearch.errors import HashsearchError

PNG_CACHE_SIZE = 4096  # a 32x32 PNG is ~3 kB: a few result pages of every query, in 12 MB
PNG_MAX_SIDE = 512  # an item added from a photo is shown, not shipped at full size


class UnknownItem(KeyError):
    """The index holds no item of this id."""


class ImageUnavailable(HashsearchError):
    """The index holds the item, but its image file is gone or unreadable."""


class ItemImages:
    """uint8 (H, W, C) pixels and PNG bytes of an index's items by id; thread-safe."""

    def __init__(self, ids: list[str], config: RunConfig, data_path: str | None = None) -> None:
        self._ids = frozenset(ids)
        self._config = config
        self._data_path = data_path
        self._lock = threading.Lock()
        self._dataset: ImageDataset | None = None
        self._rows: dict[str, int] = {}
        self.png = lru_cache(maxsize=PNG_CACHE_SIZE)(self._png)

    def dataset(self) -> ImageDataset:
        """The run's data set, loaded on first use (a HashsearchError when it is missing)."""
        with self._lock:
            if self._dataset is None:
                data = self._config.data
                dataset = load_dataset(data.dataset, self._data_path or data.path, data.image_size)
                self._rows = {str(item): row for row, item in enumerate(dataset.ids)}
                self._dataset = dataset
            return self._dataset

    def pixels(self, item_id: str) -> np.ndarray:
        """An item's pixels; `UnknownItem` for an id outside the index."""
        if item_id not in self._ids:
            raise UnknownItem(item_id)
        dataset = self.dataset()
        if item_id in self._rows:
            return np.asarray(dataset.images[self._rows[item_id]])
        try:  # an item added from a file: the index holds its path
            return decode_image(Path(item_id), item_id)
        except HashsearchError as exc:
            raise ImageUnavailable(str(exc)) from None

    def _png(self, item_id: str) -> bytes:
        return png_bytes(self.pixels(item_id))


def png_bytes(pixels: np.ndarray) -> bytes:
    """(H, W, C) uint8 -> PNG file bytes, at most `PNG_MAX_SIDE` pixels a side."""
    image = Image.fromarray(pixels.squeeze(axis=2) if pixels.shape[2] == 1 else pixels)
    image.thumbnail((PNG_MAX_SIDE, PNG_MAX_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
