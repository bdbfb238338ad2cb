"""What the fuzz suite shares: generated image files, the refusal check, directory snapshots."""

from __future__ import annotations

import hashlib
import io
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from PIL import Image

from hashsearch.errors import HashsearchError

# Deterministic and replayable: the same examples on every run and machine, no database.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Pillow's writer name and the extension a file of it gets.
FORMATS = {
    "PNG": ".png",
    "JPEG": ".jpg",
    "BMP": ".bmp",
    "GIF": ".gif",
    "WEBP": ".webp",
    "TIFF": ".tif",
}


def encoded(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise_image(mode: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A `mode` image of random pixels; 16-bit modes use their whole range."""
    rng = np.random.default_rng(seed)
    width, height = size
    if mode in ("I;16", "I"):
        values = rng.integers(0, 2**16, (height, width))
        return Image.fromarray(values.astype(np.uint16 if mode == "I;16" else np.int32))
    rgb = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return rgb.convert(mode)


def claiming(data: bytes, fmt: str, width: int, height: int) -> bytes:
    """A valid small file of `fmt` whose header is patched to declare `width` x `height`."""
    out = bytearray(data)
    if fmt == "PNG":
        out[16:24] = struct.pack(">II", width, height)
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    elif fmt == "GIF":
        out[6:10] = struct.pack("<HH", width, height)
    elif fmt == "BMP":
        out[18:26] = struct.pack("<ii", width, height)
    elif fmt == "JPEG":
        sof = out.index(b"\xff\xc0")
        out[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    elif fmt == "WEBP":  # a lossy VP8 key frame: 14-bit width and height after the start code
        start = out.index(b"\x9d\x01\x2a") + 3
        out[start : start + 4] = struct.pack("<HH", width, height)
    elif fmt == "TIFF":  # ImageWidth (256) and ImageLength (257), written as LONG
        ifd = struct.unpack("<I", out[4:8])[0]
        for entry in range(struct.unpack("<H", out[ifd : ifd + 2])[0]):
            at = ifd + 2 + 12 * entry
            tag = struct.unpack("<H", out[at : at + 2])[0]
            if tag in (256, 257):
                out[at + 8 : at + 12] = struct.pack("<I", width if tag == 256 else height)
    return bytes(out)


# The largest dimension each format's header can declare.
MAX_DIMENSION = {
    "PNG": 2**31 - 1,
    "GIF": 2**16 - 1,
    "BMP": 2**31 - 1,
    "JPEG": 2**16 - 1,
    "WEBP": 2**14 - 1,
    "TIFF": 2**32 - 1,
}


def assert_one_line(message: str, *fragments: str) -> None:
    """A refusal: one line, short enough to read, naming what it is about."""
    assert message and "\n" not in message and len(message) <= 500, message
    assert "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def refused(call: Callable[[], Any], *fragments: str) -> str:
    """Run `call`, which must raise a one-line `HashsearchError` naming `fragments`."""
    try:
        result = call()
    except HashsearchError as exc:
        assert_one_line(str(exc), *fragments)
        return str(exc)
    raise AssertionError(f"accepted, expected a refusal naming {fragments}: {result!r}")


def snapshot(*paths: Path) -> dict[str, str]:
    """sha256 of every file at or under `paths`, "/" for a folder: equal before and after
    a failed command means nothing there was created, changed or removed."""
    state = {}
    for path in paths:
        for item in [path, *(sorted(path.rglob("*")) if path.is_dir() else [])]:
            if item.is_file():
                state[str(item)] = hashlib.sha256(item.read_bytes()).hexdigest()
            else:
                state[str(item)] = "/" if item.is_dir() else "absent"
    return state


def fresh_copy(source: Path, target: Path) -> Path:
    """`target` made a copy of `source`, whatever an earlier generated example left there."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    return target
