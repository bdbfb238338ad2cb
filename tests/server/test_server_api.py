"""The HTTP API on a real index: answers equal the Python API's, item images, info."""

from __future__ import annotations

import io
import shutil
import tarfile
import threading
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from server_helpers import cli, post_image

from hashsearch import api
from hashsearch.data.decode import decode_image
from hashsearch.server import create_app, routes
from hashsearch.server.engine import Searcher


@pytest.mark.parametrize(
    "params", [{"top": 5, "candidates": 50}, {"top": 7, "radius": 3, "rerank": "none"}]
)
def test_search_answers_as_the_python_api(client, served_index, query_files, params):
    query = query_files[0]
    response = post_image(client, query, **params)
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = api.search_images(served_index, [query], **params)[0]["results"]
    results = answer["results"]
    assert [r["rank"] for r in results] == list(range(1, len(expected) + 1))
    for got, want in zip(results, expected, strict=True):
        assert {k: got[k] for k in ("item", "id", "label", "hamming")} == {
            k: want[k] for k in ("item", "id", "label", "hamming")
        }
        assert got["score"] == pytest.approx(want["score"], abs=1e-6)
        assert got["image_url"] == f"/items/{quote(got['id'], safe='')}/image"
    timings = answer["timings_ms"]
    assert set(timings) == {"decode", "encode", "stage1", "stage2", "total"}
    assert all(v >= 0 for v in timings.values()) and timings["total"] >= timings["encode"]
    assert answer["query"] == {
        "filename": query.name,
        "bytes": query.stat().st_size,
        "top": params["top"],
        "candidates": params.get("candidates", 100),
        "radius": params.get("radius"),
        "rerank": params.get("rerank", "cosine"),
    }


def test_info_health_page_and_schema(client):
    info = client.get("/info").json()
    assert info["method"] == "saeh" and info["bits"] == 16 and info["count"] == 240
    assert info["classes"][3] == "cat" and info["image_shape"] == [3, 32, 32]
    assert "cosine" in info["rerankers"] and info["version"]
    assert client.get("/health").json() == {"status": "ok", "count": 240}
    page = client.get("/")
    assert page.status_code == 200 and 'id="file-input"' in page.text
    assert client.get("/static/app.js").status_code == 200
    schema = client.get("/openapi.json").json()
    params = {p["name"] for p in schema["paths"]["/search"]["post"]["parameters"]}
    assert params == {"top", "candidates", "radius", "rerank"}


def test_item_images_are_the_data_set_pixels(client, cifar10_slice, query_files):
    hit = post_image(client, query_files[0], top=1).json()["results"][0]
    response = client.get(hit["image_url"])
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    with tarfile.open(cifar10_slice) as archive:
        jpeg = archive.extractfile(hit["id"]).read()
    served = np.asarray(Image.open(io.BytesIO(response.content)))
    np.testing.assert_array_equal(served, decode_image(jpeg, hit["id"]))
    # the id's '/' unescaped reaches the same item
    assert client.get(f"/items/{hit['id']}/image").content == response.content


@pytest.mark.parametrize(
    "item_id",
    [
        "no-such-item",
        "../../../../etc/passwd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "..%2F..%2Fetc%2Fpasswd",
        "/etc/passwd",
        "train/../../../etc/hostname",
        "train/cat/../../../pyproject.toml",
    ],
)
def test_only_indexed_ids_are_served(client, item_id):
    # a client may resolve the '..' itself (httpx does, as browsers do): still a 404
    response = client.get(f"/items/{item_id}/image")
    assert response.status_code == 404 and "\n" not in response.json()["detail"]


def test_items_added_from_files_are_served_from_their_path(served_index, query_files, tmp_path):
    index = shutil.copytree(served_index, tmp_path / "index")
    added = [
        shutil.copy(path, tmp_path / f"added-{i}.jpg") for i, path in enumerate(query_files[:2])
    ]
    cli("index-add", "--index", index, "--label", "3", *added)
    client = TestClient(create_app(index))
    url = f"/items/{quote(str(added[0]), safe='')}/image"
    served = np.asarray(Image.open(io.BytesIO(client.get(url).content)))
    np.testing.assert_array_equal(served, decode_image(added[0], "added"))
    (tmp_path / "added-1.jpg").unlink()
    gone = client.get(f"/items/{quote(str(added[1]), safe='')}/image")
    assert gone.status_code == 404 and "does not exist" in gone.json()["detail"]


def test_a_missing_data_set_is_a_503_with_the_remedy(served_index, tmp_path):
    client = TestClient(create_app(served_index, data_path=str(tmp_path / "moved.tar.gz")))
    assert client.get("/health").status_code == 200
    response = client.get("/items/train%2Fcat%2F0000.jpg/image")
    assert response.status_code == 503 and "--data" in response.json()["detail"]


def test_a_radius_wider_than_one_request_may_cost_is_a_422(client, query_files, monkeypatch):
    monkeypatch.setattr(routes, "MAX_CANDIDATES", 239)  # radius 16: all 240 items of 16 bits
    answer = post_image(client, query_files[0], radius=16)
    assert (
        answer.status_code == 422 and "240 items, over the limit of 239" in answer.json()["detail"]
    )
    monkeypatch.setattr(routes, "MAX_CANDIDATES", 240)
    assert post_image(client, query_files[0], radius=16).status_code == 200


def test_the_app_serves_again_after_its_lifespan_ended(served_index, query_files):
    app = create_app(served_index)
    for _ in range(2):  # the encoder thread stops with the first lifespan, starts again
        with TestClient(app) as again:
            assert post_image(again, query_files[0]).status_code == 200


def test_large_uploads_are_decoded_off_the_searcher_thread_alike(client, query_files, monkeypatch):
    usual = post_image(client, query_files[0]).json()
    decoded_on = []
    decode = Searcher.decode

    def recording(self, data, name):
        decoded_on.append(threading.current_thread().name)
        return decode(self, data, name)

    monkeypatch.setattr(Searcher, "decode", recording)
    post_image(client, query_files[0])
    monkeypatch.setattr(routes, "LARGE_UPLOAD", 0)  # every upload counts as large
    large = post_image(client, query_files[0]).json()
    assert large["results"] == usual["results"] and large["timings_ms"]["decode"] > 0
    assert decoded_on[0] == "hashsearch-queries" and decoded_on[1] != "hashsearch-queries"
    refused = client.post("/search", files={"image": ("x.jpg", b"not an image at all")})
    assert refused.status_code == 415 and "x.jpg is not an image" in refused.json()["detail"]


def test_more_searches_than_the_server_takes_at_once_get_a_503(client, query_files, monkeypatch):
    monkeypatch.setattr(routes, "MAX_IN_FLIGHT", 0)
    response = post_image(client, query_files[0])
    assert response.status_code == 503 and "retry" in response.json()["detail"]
    monkeypatch.setattr(routes, "MAX_IN_FLIGHT", 1)
    junk = client.post("/search", files={"image": ("x.jpg", b"not an image at all")})
    statuses = [post_image(client, query_files[0]).status_code, junk.status_code]
    statuses += [post_image(client, query_files[0]).status_code for _ in range(2)]
    assert statuses == [200, 415, 200, 200]  # answered or refused, a search frees its place
