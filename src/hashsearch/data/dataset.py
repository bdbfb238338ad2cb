"""The in-memory form every loader returns: uint8 images, labels, names, ids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image collection, kept as decoded uint8 pixels.

    Images stay uint8 (a quarter of float32's memory) and may be a read-only
    memmap of the decode cache; normalisation and augmentation happen later on
    tensors, batch by batch.

    Args:
        images: (N, H, W, C) uint8, C = 1 or 3.
        labels: (N,) int64 class indices, or (N, K) uint8 multi-hot for multi-label data.
        classes: K class names; label i names ``classes[i]``.
        ids: (N,) str, a stable identifier per item (a path inside the source, or
            ``"<split>/<position>"`` for array formats).
        splits: (N,) str, the source's own split of each item (``"train"``, ``"test"``),
            or ``""`` where the source has none. Protocols use it (``cifar10-2``).
        name: a short name of the source, for manifests and reports.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    ids: np.ndarray
    splits: np.ndarray
    name: str

    def __post_init__(self) -> None:
        n = len(self.images)
        assert self.images.ndim == 4 and self.images.dtype == np.uint8, self.images.shape
        assert self.images.shape[3] in (1, 3), self.images.shape
        assert len(self.labels) == n and len(self.ids) == n and len(self.splits) == n
        assert self.labels.ndim in (1, 2), self.labels.shape

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W), the layout models take."""
        _, h, w, c = self.images.shape
        return (c, h, w)
