"""Encoded image files to uint8 RGB arrays, one conversion for the database and for queries.

A query must go through exactly the conversion its database went through (mode, resize
filter), or its hash code drifts from those of identical database images; so the loaders
and the search command share `decode_image`.

Every image becomes 3-channel RGB, grayscale ones included: one channel count per data set
whatever mix of modes a folder holds, and the same for a query. Alpha is dropped, not
composited; 16-bit grayscale keeps its top 8 bits.

A file is untrusted: its header is read before any pixel is, and one that declares more
than `MAX_PIXELS` (a decompression bomb: a few kB of PNG can declare gigapixels) is
refused before a pixel is allocated.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from hashsearch.errors import HashsearchError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# 64 megapixels: above the largest phone photos (about 50 MP), below the 89 MP where Pillow
# only warns; decoded, such an image already takes 192 MB as RGB.
MAX_PIXELS = 2**26
# The largest --image-size: a data set is held decoded, N x side^2 x 3 bytes (3 MB an
# image at 1024), and a CPU model is trained on it.
MAX_IMAGE_SIDE = 1024
# Pillow warns of what it decodes anyway (damaged TIFF tags or EXIF) and of sizes from
# 89 MP on (over MAX_PIXELS, refused here): decode_image answers with pixels or a one-line
# refusal, which a warning would only add lines to. (Filters, not `catch_warnings`: request
# threads of the server decode at once, and that is not thread-safe.)
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# Pillow's 16-bit grayscale modes (PNG, TIFF); `convert("RGB")` clips them to 255.
_WIDE_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})

# Below this many files a process pool's start-up costs more than it saves.
_PARALLEL_MIN_FILES = 2_000
_FILES_PER_TASK = 1_000
_MAX_WORKERS = 8


def is_image_name(name: str) -> bool:
    """Whether a file name has one of `IMAGE_EXTENSIONS` (case-insensitive)."""
    return PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS


def check_image_size(image_size: int | None) -> None:
    """Refuse an ``image_size`` that is not an int from 1 to `MAX_IMAGE_SIDE`, before any
    slow work starts."""
    if image_size is None:
        return
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise HashsearchError(
            f"image size must be a positive integer, got {image_size!r}; pass --image-size N"
        )
    if image_size > MAX_IMAGE_SIDE:
        raise HashsearchError(
            f"image size {image_size} is over {MAX_IMAGE_SIDE}; pass a smaller --image-size N"
        )


def decode_image(
    data: bytes | Path,
    name: str,
    image_size: int | None = None,
    expected_hw: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode one image file (its bytes, or its path) to an (H, W, 3) uint8 RGB array.

    Args:
        data: the encoded file, or a path to read it from.
        name: how error messages name the file (a path inside the source).
        image_size: resize to ``image_size`` x ``image_size`` with bicubic filtering.
        expected_hw: without ``image_size``, the (H, W) the image must have, e.g. the
            database's size for a query; a mismatch raises instead of giving a query that
            no model input can take.
    """
    if isinstance(data, Path) and not data.is_file():  # a FIFO or device would block
        problem = "is not a regular file" if data.exists() else "does not exist; check the path"
        raise HashsearchError(f"image {name} {problem}")
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            _check_pixel_count(image.size, name)
            pixels = np.array(_to_rgb(image, image_size), dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        raise HashsearchError(_too_large(name, "beyond Pillow's own limit")) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise HashsearchError(
            f"cannot decode {name} as an image ({exc}); remove or replace the file"
        ) from exc
    if image_size is None and expected_hw is not None and pixels.shape[:2] != expected_hw:
        (height, width), (want_h, want_w) = pixels.shape[:2], expected_hw
        raise HashsearchError(
            f"{name} is {width}x{height} pixels but {want_w}x{want_h} is expected; "
            f"resize it or pass --image-size N"
        )
    return pixels


def _check_pixel_count(size: tuple[int, int], name: str) -> None:
    """Refuse a declared (width, height) over `MAX_PIXELS`, before the pixels are decoded."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise HashsearchError(_too_large(name, f"{width}x{height} pixels"))


def _too_large(name: str, declared: str) -> str:
    return (
        f"{name} is too large to decode ({declared}; at most {MAX_PIXELS:,} pixels, a guard "
        "against decompression bombs); downscale it or remove the file"
    )


def _to_rgb(image: Image.Image, image_size: int | None) -> Image.Image:
    """RGB copy of ``image``, resized when asked; palette transparency goes via RGBA."""
    if image.mode in _WIDE_MODES:
        image = Image.fromarray((np.clip(np.asarray(image), 0, 2**16 - 1) >> 8).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    rgb = image.convert("RGB")
    if image_size is not None and rgb.size != (image_size, image_size):
        rgb = rgb.resize((image_size, image_size), Image.Resampling.BICUBIC)
    return rgb


def decode_images(
    files: Sequence[tuple[str, bytes | Path]], image_size: int | None
) -> list[np.ndarray]:
    """Decode ``(name, bytes or path)`` pairs with `decode_image`, in order.

    Large sets go to a pool of processes: decoding small JPEGs is dominated by
    per-image Python work that holds the GIL, so threads were slower than one
    thread on 2 cores while processes were faster (measured on CIFAR-10 JPEGs).
    """
    tasks = [files[i : i + _FILES_PER_TASK] for i in range(0, len(files), _FILES_PER_TASK)]
    workers = min(_MAX_WORKERS, _available_cpus(), len(tasks))
    if len(files) < _PARALLEL_MIN_FILES or workers < 2:
        return [image for task in tasks for image in _decode_task(task, image_size)]
    pool = ProcessPoolExecutor(workers)
    try:
        results = pool.map(_decode_task, tasks, repeat(image_size))
        return [image for task_images in results for image in task_images]
    finally:
        pool.shutdown(cancel_futures=True)


def _available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # the CPUs this process may use, on Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _decode_task(
    files: Sequence[tuple[str, bytes | Path]], image_size: int | None
) -> np.ndarray | list[np.ndarray]:
    """Decode a task's files; stacked when they share a size, as one array crosses
    processes several times faster than a thousand small ones."""
    images = [decode_image(data, name, image_size) for name, data in files]
    return np.stack(images) if len({image.shape for image in images}) == 1 else images


def resize_images(images: np.ndarray, image_size: int) -> np.ndarray:
    """Resize (N, H, W, C) uint8 images to ``image_size`` squared, as `decode_image` does.

    For array-format sources (CIFAR-10 batches, digits), so that ``image_size`` means the
    same for every data set.
    """
    if images.shape[1:3] == (image_size, image_size):
        return images
    resized = [
        np.asarray(
            Image.fromarray(image.squeeze(axis=2) if image.shape[2] == 1 else image).resize(
                (image_size, image_size), Image.Resampling.BICUBIC
            )
        )
        for image in images
    ]
    return np.stack(resized).reshape(len(images), image_size, image_size, images.shape[3])
