"""Index directories: round trip, and clear errors for damaged or foreign ones."""

import json

import numpy as np
import pytest

from hashsearch.encoding import Encoded
from hashsearch.errors import HashsearchError
from hashsearch.index import HashIndex


@pytest.fixture
def index():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (30, 6), dtype=np.uint8)
    features = rng.standard_normal((30, 5)).astype(np.float32)
    return HashIndex.build(
        Encoded(codes, features, rng.integers(0, 3, 30)),
        [f"item{i}" for i in range(30)],
        {"method": "saeh", "classes": ["a", "b", "c"]},
    )


def test_round_trip(tmp_path, index):
    index.save(tmp_path / "ix")
    loaded = HashIndex.load(tmp_path / "ix")
    assert loaded.bits == 48 and len(loaded) == 30
    assert np.array_equal(loaded.codes(), index.codes())
    assert np.array_equal(loaded.features, index.features)
    assert loaded.ids == index.ids and np.array_equal(loaded.labels, index.labels)
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["bits"] == 48 and manifest["count"] == 30 and manifest["feature_dim"] == 5
    assert manifest["method"] == "saeh" and manifest["backend"] == "IndexBinaryFlat"
    assert set(manifest["files"]) == {"codes.faiss", "features.npy", "labels.npy", "ids.json"}


def test_damaged_file_is_reported(tmp_path, index):
    index.save(tmp_path / "ix")
    with open(tmp_path / "ix" / "features.npy", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\xff\xff\xff\xff")
    with pytest.raises(HashsearchError, match=r"features.npy is missing or damaged"):
        HashIndex.load(tmp_path / "ix")


def test_other_version_and_foreign_directory(tmp_path, index):
    index.save(tmp_path / "ix")
    manifest_path = tmp_path / "ix" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(HashsearchError, match="format version 99"):
        HashIndex.load(tmp_path / "ix")
    with pytest.raises(HashsearchError, match="not a hashsearch index"):
        HashIndex.load(tmp_path)
    manifest_path.write_text("{not json")
    with pytest.raises(HashsearchError, match="damaged"):
        HashIndex.load(tmp_path / "ix")
