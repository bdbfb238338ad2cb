"""scikit-learn's bundled 8x8 digits: the demo's default data set, with no download.

1,797 grayscale images of the digits 0..9 ship inside scikit-learn, so the demo runs
offline and in seconds. Their 0..16 intensities are scaled to the 0..255 uint8 range that
every other loader returns.
"""

from __future__ import annotations

import numpy as np

from hashsearch.data.dataset import ImageDataset
from hashsearch.data.decode import check_image_size, resize_images

_MAX_INTENSITY = 16


def load_digits_dataset(image_size: int | None = None) -> ImageDataset:
    """The digits as (1797, 8, 8, 1) uint8 images, classes ``"0"`` .. ``"9"``, no splits.

    Args:
        image_size: resize to ``image_size`` x ``image_size`` (bicubic); default 8x8.
    """
    check_image_size(image_size)
    from sklearn.datasets import load_digits  # slow to import; only this loader needs it

    digits = load_digits()
    scaled = digits.images.astype(np.int64) * 255 // _MAX_INTENSITY
    images = scaled.astype(np.uint8)[..., np.newaxis]
    count = len(images)
    return ImageDataset(
        images=images if image_size is None else resize_images(images, image_size),
        labels=digits.target.astype(np.int64),
        classes=tuple(str(name) for name in digits.target_names),
        ids=np.array([f"digits/{index}" for index in range(count)]),
        splits=np.full(count, "", dtype=str),
        name="digits",
    )
