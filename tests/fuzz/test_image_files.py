"""decode_image on generated files: every readable mode decodes to (H, W, 3) uint8 RGB, and
everything else is refused with one line naming the file.

Valid: 1-bit, L, LA, P, RGB, RGBA, CMYK, YCbCr and 16-bit (I;16, I) images in each of
PNG, JPEG, BMP, GIF, WebP and TIFF that Pillow writes (41 parametrized, 60 generated).
Bad: truncated at every kind of offset (150), random bytes (100), a valid header then
garbage (100), flipped bytes (150), headers declaring more than `MAX_PIXELS` (100), a real
decompression bomb, empty and text files, things that are not files (13 parametrized).
About 710 cases.
"""

from __future__ import annotations

import io
import os
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from fuzz_helpers import (
    FORMATS,
    FUZZ,
    MAX_DIMENSION,
    assert_one_line,
    claiming,
    encoded,
    noise_image,
    refused,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from hashsearch.data.decode import MAX_PIXELS, decode_image
from hashsearch.errors import HashsearchError

# hashsearch.data.decode ignores Pillow's warnings of damaged files (it answers with pixels
# or a refusal), but pytest restores the warning filters around each test.
pytestmark = [
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning:PIL"),
]


MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I;16", "I")


def writable(mode: str, fmt: str) -> bool:
    try:
        encoded(noise_image(mode, (2, 2)), fmt)
    except (OSError, ValueError, KeyError):
        return False
    return True


VALID = [(mode, fmt) for mode in MODES for fmt in FORMATS if writable(mode, fmt)]


def expected_rgb(data: bytes) -> np.ndarray:
    """What a lossless file holds, as RGB: 16-bit gray by its top byte, else Pillow's own."""
    with Image.open(io.BytesIO(data)) as image:
        if image.mode in ("I;16", "I"):
            gray = (np.asarray(image).astype(np.int64) >> 8).astype(np.uint8)
            return np.repeat(gray[..., None], 3, axis=2)
        rgba = image.convert("RGBA") if image.mode == "P" else image
        return np.asarray(rgba.convert("RGB"))


def decodes_or_refuses(data: bytes, name: str) -> None:
    """The property of every file: RGB uint8 pixels, or a one-line refusal naming it."""
    try:
        pixels = decode_image(data, name)
    except HashsearchError as exc:
        assert_one_line(str(exc), name)
        return
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8


@pytest.mark.parametrize(("mode", "fmt"), VALID, ids=[f"{m}-{f}" for m, f in VALID])
def test_every_mode_and_format_decodes_to_rgb(mode: str, fmt: str) -> None:
    data = encoded(noise_image(mode, (7, 5)), fmt)
    pixels = decode_image(data, f"image{FORMATS[fmt]}")
    assert pixels.shape == (5, 7, 3) and pixels.dtype == np.uint8
    if fmt in ("PNG", "BMP", "TIFF"):  # lossless, and the mode is kept
        assert np.array_equal(pixels, expected_rgb(data))


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grayscale_keeps_its_top_byte_instead_of_saturating(fmt: str) -> None:
    values = np.array([[0, 255, 256, 1000], [30000, 40000, 65280, 65535]], dtype=np.uint16)
    pixels = decode_image(encoded(Image.fromarray(values), fmt), "deep.png")
    assert np.array_equal(pixels[..., 0], values >> 8) and (pixels[..., 1] == pixels[..., 0]).all()


@settings(FUZZ, max_examples=60)
@given(
    case=st.sampled_from(VALID),
    width=st.integers(1, 40),
    height=st.integers(1, 40),
    seed=st.integers(0, 2**16),
    image_size=st.none() | st.integers(1, 24),
)
def test_generated_valid_images_decode(case, width, height, seed, image_size) -> None:
    mode, fmt = case
    data = encoded(noise_image(mode, (width, height), seed), fmt)
    pixels = decode_image(data, "generated" + FORMATS[fmt], image_size)
    side = (height, width) if image_size is None else (image_size, image_size)
    assert pixels.shape == (*side, 3) and pixels.dtype == np.uint8


def sample_file(case: tuple[str, str], seed: int = 0) -> bytes:
    mode, fmt = case
    return encoded(noise_image(mode, (12, 9), seed), fmt)


@settings(FUZZ, max_examples=150)
@given(case=st.sampled_from(VALID), cut=st.floats(0, 1, exclude_max=True))
def test_truncated_files(case, cut) -> None:
    data = sample_file(case)
    decodes_or_refuses(data[: int(cut * len(data))], "cut" + FORMATS[case[1]])


@settings(FUZZ, max_examples=100)
@given(data=st.binary(max_size=600), extension=st.sampled_from(sorted(FORMATS.values())))
def test_random_bytes_with_image_names(data, extension) -> None:
    decodes_or_refuses(data, "random" + extension)


@settings(FUZZ, max_examples=100)
@given(case=st.sampled_from(VALID), keep=st.integers(1, 80), garbage=st.binary(max_size=300))
def test_valid_header_then_garbage(case, keep, garbage) -> None:
    decodes_or_refuses(sample_file(case)[:keep] + garbage, "header" + FORMATS[case[1]])


@settings(FUZZ, max_examples=150)
@given(
    case=st.sampled_from(VALID),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=6),
)
def test_flipped_bytes(case, flips) -> None:
    data = bytearray(sample_file(case))
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    decodes_or_refuses(bytes(data), "flipped" + FORMATS[case[1]])


@st.composite
def over_the_limit(draw: st.DrawFn) -> tuple[str, int, int]:
    """A format and a width x height over `MAX_PIXELS` that its header can declare."""
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    largest = MAX_DIMENSION[fmt]
    width = draw(st.integers(MAX_PIXELS // largest + 1, largest))
    height = draw(st.integers(MAX_PIXELS // width + 1, largest))
    return fmt, width, height


@settings(FUZZ, max_examples=100)
@given(claim=over_the_limit())
def test_huge_declared_dimensions_are_refused_before_decoding(claim) -> None:
    fmt, width, height = claim
    data = claiming(encoded(noise_image("RGB", (4, 3)), fmt), fmt, width, height)
    refused(lambda: decode_image(data, "huge" + FORMATS[fmt]), "huge" + FORMATS[fmt], "too large")


def test_a_real_decompression_bomb_is_refused_before_its_pixels_exist() -> None:
    """64 kB of PNG that inflates to 67 MP of gray: valid all through, only too large."""
    side = 8193  # 8193**2 > MAX_PIXELS
    rows = zlib.compress(bytes(side + 1) * side, 9)  # each row: filter byte 0, then zeros
    bomb = claiming(encoded(Image.new("L", (1, 1))), "PNG", side, side)
    start = bomb.index(b"IDAT") - 4
    end = start + 12 + int.from_bytes(bomb[start : start + 4], "big")
    chunk = len(rows).to_bytes(4, "big") + b"IDAT" + rows
    bomb = bomb[:start] + chunk + zlib.crc32(b"IDAT" + rows).to_bytes(4, "big") + bomb[end:]
    started = time.perf_counter()
    refused(lambda: decode_image(bomb, "bomb.png"), "bomb.png", "8193x8193", "too large")
    assert time.perf_counter() - started < 1.0


JPEG = encoded(noise_image("RGB", (16, 16)), "JPEG")
NOT_IMAGES = {
    "empty": b"",
    "text": b"a cat, sitting on a mat\n",
    "html": b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
    "zip": b"PK\x03\x04" + bytes(40),
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj",
    "gif signature only": b"GIF89a",
    "png signature only": b"\x89PNG\r\n\x1a\n",
    "jpeg markers only": JPEG[:20],
    "jpeg without its end": JPEG[: len(JPEG) // 2],
}


@pytest.mark.parametrize("kind", NOT_IMAGES)
def test_files_that_are_not_images_are_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(NOT_IMAGES[kind])
    refused(lambda: decode_image(path, str(path)), str(path))
    refused(lambda: decode_image(NOT_IMAGES[kind], "upload.png"), "upload.png")


def test_paths_that_are_not_files_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo, folder, loop = tmp_path / "pipe.jpg", tmp_path / "folder.png", tmp_path / "loop.jpg"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    folder.mkdir()
    loop.symlink_to(loop)
    refused(lambda: decode_image(fifo, str(fifo)), str(fifo), "not a regular file")
    refused(lambda: decode_image(folder, str(folder)), str(folder), "not a regular file")
    refused(lambda: decode_image(loop, str(loop)), str(loop))
    refused(lambda: decode_image(tmp_path / "gone.png", "gone.png"), "gone.png", "does not exist")
