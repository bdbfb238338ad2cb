"""decode_image: the one conversion shared by database images and queries."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hashsearch.data import decode_image
from hashsearch.errors import HashsearchError


def encoded(image: Image.Image, format: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def test_grayscale_becomes_rgb() -> None:
    pixels = decode_image(encoded(Image.new("L", (3, 2), 77)), "gray.png")
    assert pixels.shape == (2, 3, 3) and pixels.dtype == np.uint8
    assert np.all(pixels == 77)


def test_palette_with_transparency_decodes_without_warning() -> None:
    image = Image.new("P", (2, 2), 1)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    data = encoded(image, transparency=bytes([0] + [255] * 255))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pixels = decode_image(data, "palette.png")
    assert tuple(pixels[0, 0]) == (10, 20, 30)


def test_path_input_and_resize(tmp_path: Path) -> None:
    path = tmp_path / "query.jpg"
    Image.new("RGB", (40, 30), (200, 100, 50)).save(path, quality=95)
    pixels = decode_image(path, str(path), image_size=16)
    assert pixels.shape == (16, 16, 3)
    assert np.abs(pixels.astype(int) - [200, 100, 50]).max() <= 3


def test_size_mismatch_with_expected_size() -> None:
    data = encoded(Image.new("RGB", (40, 30)))
    with pytest.raises(HashsearchError, match=r"q\.png is 40x30 pixels but 32x32.*--image-size"):
        decode_image(data, "q.png", expected_hw=(32, 32))
    assert decode_image(data, "q.png", image_size=32, expected_hw=(32, 32)).shape == (32, 32, 3)


def test_missing_query_file(tmp_path: Path) -> None:
    with pytest.raises(HashsearchError, match=r"nope\.jpg does not exist"):
        decode_image(tmp_path / "nope.jpg", "nope.jpg")


def test_truncated_jpeg_is_refused() -> None:
    data = encoded(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")
    with pytest.raises(HashsearchError, match=r"cut\.jpg.*remove or replace"):
        decode_image(data[: len(data) // 2], "cut.jpg")
