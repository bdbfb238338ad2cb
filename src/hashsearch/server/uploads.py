"""Uploaded query images -> the model's input, refusing what must not reach the decoder.

An upload is untrusted. Its byte size is capped before it is read in full
(`BodyLimit`); its pixel count is read from the header before a pixel is decoded,
since a 50 kB PNG can claim 100,000 x 100,000 pixels; and any failure of the
decoder on it is the file's fault, so it becomes a 4xx `UploadError`, never a 500.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hashsearch.api import load_query_image
from hashsearch.errors import HashsearchError

DEFAULT_MAX_BYTES = 10 * 2**20
# Far above any photo a 32x32 model is asked about (12 MP phones), far below the
# 179 MP where Pillow itself refuses; what a decoded query may cost in memory is
# this times 3 bytes, per request in flight.
DEFAULT_MAX_PIXELS = 4096 * 4096


class UploadError(HTTPException):
    """A bad upload: its HTTP status and a one-line reason (an `HTTPException`, so that
    raised while FastAPI reads the body it passes through as itself)."""


def query_pixels(
    data: bytes, name: str, image_shape: tuple[int, int, int], max_pixels: int
) -> np.ndarray:
    """An uploaded file as the model's (H, W, C) uint8 input, converted like the database
    (through `hashsearch.api.load_query_image`, as files on disk are)."""
    if not data:
        raise UploadError(422, f"{name} is empty; send an image file")
    check_dimensions(data, name, max_pixels)
    try:
        return load_query_image(data, image_shape, name)
    except HashsearchError as exc:
        raise UploadError(422, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a decoder failing on untrusted bytes is their fault
        raise UploadError(422, damaged(name, exc)) from None


def damaged(name: str, exc: Exception) -> str:
    reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    return f"{name} is a damaged or truncated image ({reason}); send the whole file"


def check_dimensions(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse a file that is no image, or whose header claims more than `max_pixels`."""
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            width, height = image.size
    except Image.DecompressionBombError:
        raise UploadError(413, f"{name} claims too many pixels (a decompression bomb)") from None
    except Image.UnidentifiedImageError:
        raise UploadError(
            415, f"{name} is not an image Pillow can read; send a PNG, JPEG, GIF, BMP or WebP file"
        ) from None
    except Exception as exc:  # noqa: BLE001 - see query_pixels
        raise UploadError(422, damaged(name, exc)) from None
    if width * height > max_pixels:
        raise UploadError(
            413,
            f"{name} is {width}x{height} pixels, over the limit of {max_pixels:,}; "
            "send a smaller image",
        )


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 before it is read in full.

    A declared Content-Length over the limit is refused at once; a body without one
    is counted as it streams in.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.detail = (
            f"the request is over the upload limit of {max_bytes:,} bytes; send a smaller image"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": self.detail}, 413)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise UploadError(413, self.detail)
            return message

        await self.app(scope, limited_receive, send)
