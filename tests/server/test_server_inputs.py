"""Bad requests get a 4xx with a one-line reason, never a 500, and the server goes on."""

from __future__ import annotations

import io
import struct
import zlib
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hashsearch.rerank import RERANKERS
from hashsearch.server import create_app


def encoded(image: Image.Image, kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose header claims `width` x `height` pixels."""
    data = bytearray(encoded(Image.new("RGB", (8, 8))))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def assert_one_line_error(response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) <= 300, detail
    for fragment in fragments:
        assert fragment in detail, detail


JPEG = encoded(Image.new("RGB", (32, 32), (200, 30, 30)), "JPEG")
BAD_UPLOADS = {
    "random bytes": (bytes(range(256)) * 4, 415, "not an image"),
    "text": (b"hello, world\n", 415, "not an image"),
    "empty": (b"", 422, "empty"),
    "truncated JPEG": (JPEG[: len(JPEG) // 2], 422, "truncated"),
    "truncated PNG": (encoded(Image.effect_noise((64, 64), 50))[:300], 422, "truncated"),
    "header of a JPEG only": (JPEG[:40], 422, "truncated"),
    "bomb (40,000 x 40,000 claimed)": (png_claiming(40_000, 40_000), 413, "bomb"),
    "over the pixel limit (5,000 x 4,000)": (png_claiming(5_000, 4_000), 413, "5000x4000"),
}


@pytest.mark.parametrize("name", BAD_UPLOADS)
def test_bad_uploads_are_4xx_with_a_reason(client, name):
    data, status, fragment = BAD_UPLOADS[name]
    response = client.post("/search", files={"image": ("q.img", data)})
    assert_one_line_error(response, status, fragment, *(["q.img"] if status != 413 else []))
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (32, 32), 90),
        Image.new("RGBA", (50, 40), (1, 2, 3, 4)),
        Image.new("P", (1, 1)),
        Image.new("1", (300, 20)),
    ],
    ids=["gray", "rgba-50x40", "palette-1x1", "bilevel-300x20"],
)
def test_any_readable_image_is_a_query(client, image):
    response = client.post("/search", files={"image": ("q.png", encoded(image))})
    assert response.status_code == 200 and len(response.json()["results"]) == 10


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"top": 0}, "top"),
        ({"top": 101}, "top"),
        ({"top": "ten"}, "top"),
        ({"candidates": 0}, "candidates"),
        ({"radius": -1}, "radius"),
        ({"radius": 1.5}, "radius"),
        ({"rerank": "magic"}, "rerank"),
    ],
)
def test_bad_parameters_are_422_naming_them(client, params, fragment):
    response = client.post("/search", params=params, files={"image": ("q.jpg", JPEG)})
    assert_one_line_error(response, 422, fragment)


def test_requests_without_an_image_are_422(client):
    assert_one_line_error(client.post("/search"), 422, "image")
    assert_one_line_error(client.post("/search", data={"image": "a string"}), 422, "image")
    assert_one_line_error(client.post("/search", json={"image": "x"}), 422, "image")


def test_uploads_over_the_size_limit_are_413_read_or_not(served_index):
    with TestClient(create_app(served_index, max_upload_bytes=1000)) as small:
        declared = small.post("/search", files={"image": ("q.png", b"\0" * 2000)})
        assert_one_line_error(declared, 413, "1,000 bytes")
        streamed = small.post(  # no Content-Length: counted as it arrives
            "/search",
            content=iter([b"\0" * 600] * 3),
            headers={"content-type": "multipart/form-data; boundary=x"},
        )
        assert_one_line_error(streamed, 413, "1,000 bytes")
        assert small.get("/health").status_code == 200


def test_an_unexpected_error_is_a_500_and_the_server_goes_on(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("hashsearch.server.engine.two_stage_search", broken)
    response = client.post("/search", files={"image": ("q.jpg", JPEG)})
    assert_one_line_error(response, 500, "internal server error")
    assert "a bug" not in response.text
    monkeypatch.undo()
    assert client.post("/search", files={"image": ("q.jpg", JPEG)}).status_code == 200


def damaged(data: bytes, cuts: list[tuple[int, int]]) -> bytes:
    """`data` with the byte at each position (mod length) replaced."""
    out = bytearray(data)
    for position, value in cuts:
        out[position % len(out)] = value
    return bytes(out)


VALID = [JPEG, encoded(Image.effect_noise((40, 30), 60)), encoded(Image.new("RGB", (9, 9)), "GIF")]
uploads = st.one_of(
    st.sampled_from(VALID),
    st.binary(max_size=3000),
    st.builds(
        damaged,
        st.sampled_from(VALID),
        st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    ),
    st.builds(lambda data, n: data[:n], st.sampled_from(VALID), st.integers(0, 2000)),
)
junk = st.one_of(st.integers(-3, 20_000), st.text(max_size=6))
number = st.one_of(st.integers(0, 60), junk)
parameters = st.fixed_dictionaries(
    {},
    optional={
        "top": number,
        "candidates": number,
        "radius": number,
        "rerank": st.one_of(st.sampled_from(RERANKERS.names()), junk),
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=uploads, params=parameters, filename=st.text(max_size=40))
def test_fuzzed_searches_never_get_a_5xx(client, data, params, filename):
    response = client.post("/search", params=params, files={"image": (filename or "q", data)})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert "\n" not in response.json()["detail"]


@settings(max_examples=60, deadline=None)
@given(item_id=st.text(min_size=1, max_size=40))
def test_fuzzed_item_ids_are_404(client, item_id):
    assert client.get(f"/items/{quote(item_id, safe='')}/image").status_code == 404
