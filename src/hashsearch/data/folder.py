"""Image-folder data sets, from a directory or a tar archive of one.

Two layouts are read, the class of an image being the folder that holds it:

- ``<class>/<file>``: no split of its own (every split is ``""``);
- ``<split>/<class>/<file>``: the split (e.g. ``train``, ``test``) is the top folder.

The layout rule: it is the split layout if every top-level entry is a directory whose
children are all directories, i.e. every image sits at depth 3; it is the class layout if
every image sits at depth 2; anything else (images at the top, mixed depths, deeper
nesting) is refused, since guessing which folder is the class would mislabel silently.
Only image files count (by extension, see `IMAGE_EXTENSIONS`); other files and hidden
entries (names starting with ".") are ignored.

Classes are the sorted class folder names, across all splits, and a label is an index
into them; items are sorted by their path inside the source, which is also their id
(``train/cat/0001.jpg``), so the same source always gives the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from hashsearch.data.cache import cached_dataset
from hashsearch.data.dataset import ImageDataset
from hashsearch.data.decode import (
    IMAGE_EXTENSIONS,
    check_image_size,
    decode_image,
    decode_images,
)
from hashsearch.data.sources import existing_source, list_image_files, source_name
from hashsearch.errors import HashsearchError

__all__ = ["IMAGE_EXTENSIONS", "decode_image", "load_image_folder"]

_LAYOUTS = "<class>/<file> or <split>/<class>/<file>"


def load_image_folder(path: str | Path, image_size: int | None = None) -> ImageDataset:
    """Load an image folder (directory, .tar, .tar.gz or .tgz), decoding through the cache.

    Args:
        path: the directory or archive, in one of the layouts the module describes.
        image_size: resize every image to ``image_size`` x ``image_size`` (bicubic);
            without it all images must already share one size.
    """
    check_image_size(image_size)
    source = existing_source(path)
    options = {"loader": "image-folder", "image_size": image_size}
    return cached_dataset(source, options, lambda: _read_image_folder(source, image_size))


def _read_image_folder(source: Path, image_size: int | None) -> ImageDataset:
    files = list_image_files(source)
    if not files:
        extensions = " ".join(sorted(IMAGE_EXTENSIONS))
        raise HashsearchError(f"{source} holds no image files ({extensions}); expected {_LAYOUTS}")
    names = [name for name, _ in files]
    splits, class_names = _splits_and_classes(source, names)
    classes = tuple(sorted(set(class_names)))
    label_of = {name: label for label, name in enumerate(classes)}
    images = stack_one_size(names, decode_images(files, image_size))
    return ImageDataset(
        images=images,
        labels=np.array([label_of[name] for name in class_names], dtype=np.int64),
        classes=classes,
        ids=np.array(names, dtype=str),
        splits=np.array(splits, dtype=str),
        name=source_name(source),
    )


def _splits_and_classes(source: Path, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The split and class folder of each image, after checking the layout rule."""
    parts = [PurePosixPath(name).parts for name in names]
    depths = {len(item_parts) for item_parts in parts}
    if depths == {2}:
        return [""] * len(parts), [item_parts[0] for item_parts in parts]
    if depths == {3}:
        return [item_parts[0] for item_parts in parts], [item_parts[1] for item_parts in parts]
    examples = {len(item_parts): name for item_parts, name in zip(parts, names, strict=True)}
    shown = ", ".join(repr(examples[depth]) for depth in sorted(depths))
    raise HashsearchError(
        f"{source} does not have one layout (e.g. {shown}); arrange its images as {_LAYOUTS}"
    )


def stack_one_size(names: Sequence[str], images: Sequence[np.ndarray]) -> np.ndarray:
    """(N, H, W, 3) from images that must share one size, else name two that differ."""
    first_shape = images[0].shape
    for name, image in zip(names, images, strict=True):
        if image.shape != first_shape:
            (height, width), (other_h, other_w) = first_shape[:2], image.shape[:2]
            raise HashsearchError(
                f"images differ in size: {names[0]} is {width}x{height}, {name} is "
                f"{other_w}x{other_h}; pass --image-size N to resize all to NxN"
            )
    return np.stack(images)
