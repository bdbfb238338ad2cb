"""Index directories: round trip, lifecycle (add, remove, atomic save), feature forms, errors."""

import json

import numpy as np
import pytest

from hashsearch.encoding import Encoded
from hashsearch.errors import HashsearchError
from hashsearch.index import HashIndex
from hashsearch.index.store import current_version


def encoded(rng, n, dim=5, bytes_=6):
    return Encoded(
        rng.integers(0, 256, (n, bytes_), dtype=np.uint8),
        rng.standard_normal((n, dim)).astype(np.float32),
        rng.integers(0, 3, n),
    )


@pytest.fixture
def index():
    rng = np.random.default_rng(0)
    return HashIndex.build(
        encoded(rng, 30),
        [f"item{i}" for i in range(30)],
        {"method": "saeh", "classes": ["a", "b", "c"]},
    )


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_round_trip(tmp_path, index):
    version = index.save(tmp_path / "ix")
    assert current_version(tmp_path / "ix") == version
    loaded = HashIndex.load(tmp_path / "ix")
    assert loaded.bits == 48 and len(loaded) == 30
    assert np.array_equal(loaded.codes(), index.codes())
    assert np.array_equal(loaded.features(), index.features())
    assert loaded.ids == index.ids and np.array_equal(loaded.labels, index.labels)
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["bits"] == 48 and manifest["count"] == 30 and manifest["feature_dim"] == 5
    assert manifest["method"] == "saeh" and manifest["backend"] == {"kind": "flat"}
    assert manifest["feature_codec"] == "Flat" and manifest["feature_bytes"] == 20
    assert set(manifest["files"]) == {
        "codes.npy",
        "features.npy",
        "features.codec",
        "labels.npy",
        "ids.json",
    }
    assert isinstance(loaded.store.feature_codes(), np.memmap)  # mapped, not read


def test_features_are_stored_unit_length_and_exact_in_float32(index):
    rng = np.random.default_rng(0)
    original = encoded(rng, 30).features
    assert np.allclose(index.features(), unit(original), atol=1e-6)
    assert np.allclose(index.features(np.array([3, 1])), unit(original)[[3, 1]], atol=1e-6)


@pytest.mark.parametrize(
    ("form", "codec", "size", "tolerance"),
    [("float16", "SQfp16", 32, 1e-3), ("int8", "SQ8", 16, 0.02), ("pq", "PQ4", 4, 0.6)],
)
def test_compact_feature_forms(tmp_path, form, codec, size, tolerance):
    rng = np.random.default_rng(1)
    items = encoded(rng, 400, dim=16)
    index = HashIndex.build(items, [str(i) for i in range(400)], {}, features=form, pq_bytes=4)
    assert index.codec.name == codec and index.store.feature_codes().shape == (400, size)
    assert np.abs(index.features() - unit(items.features)).max() < tolerance
    index.save(tmp_path / form)
    loaded = HashIndex.load(tmp_path / form)
    assert np.array_equal(loaded.features(), index.features())
    assert (
        json.loads((current_version(tmp_path / form) / "manifest.json").read_text())[
            "feature_bytes"
        ]
        == size
    )


def test_auto_form_quantises_large_collections_only(monkeypatch):
    from hashsearch.index import features

    assert features.AUTO_PQ_MIN_ITEMS == 4096
    monkeypatch.setattr(features, "AUTO_PQ_MIN_ITEMS", 300)  # k-means on 4,096 items is slow
    rng = np.random.default_rng(2)
    small = HashIndex.build(encoded(rng, 299, dim=64), [str(i) for i in range(299)], {})
    assert small.codec.name == "Flat"
    large = HashIndex.build(encoded(rng, 300, dim=64), [str(i) for i in range(300)], {}, pq_bytes=4)
    assert large.codec.name == "PQ4" and large.store.feature_codes().shape[1] == 4  # 32 by default


def test_pq_needs_enough_items_to_train():
    rng = np.random.default_rng(2)
    with pytest.raises(HashsearchError, match="needs at least 256 items.*int8"):
        HashIndex.build(encoded(rng, 50), [str(i) for i in range(50)], {}, features="pq")


def test_add_then_remove_keeps_items_aligned(tmp_path, index):
    rng = np.random.default_rng(5)
    extra = encoded(rng, 5)
    index.add(extra, [f"new{i}" for i in range(5)])
    assert len(index) == 35 and index.ids[-5:] == [f"new{i}" for i in range(5)]
    assert np.array_equal(index.codes()[-5:], extra.codes)
    before_codes, before_features = index.codes(), index.features()
    removed = index.remove(["item3", "new1", "item0"])
    assert removed == 3 and len(index) == 32
    keep = [
        i
        for i, item in enumerate([f"item{i}" for i in range(30)] + [f"new{i}" for i in range(5)])
        if item not in ("item3", "new1", "item0")
    ]
    assert np.array_equal(index.codes(), before_codes[keep])
    assert np.allclose(index.features(), before_features[keep])
    assert "item3" not in index.ids and len(index.labels) == 32
    index.save(tmp_path / "ix")
    again = HashIndex.load(tmp_path / "ix")
    assert again.ids == index.ids and np.array_equal(again.codes(), index.codes())


def test_lifecycle_refuses_bad_changes_and_leaves_the_index_as_it_was(index):
    rng = np.random.default_rng(6)
    with pytest.raises(HashsearchError, match="'item2' occurs twice"):
        index.add(encoded(rng, 1), ["item2"])
    with pytest.raises(HashsearchError, match="do not fit the index"):
        index.add(encoded(rng, 2, bytes_=8), ["x", "y"])
    with pytest.raises(HashsearchError, match="'nope'.*nothing removed"):
        index.remove(["item1", "nope"])
    assert len(index) == 30 and len(index.ids) == 30 and "item1" in index.ids


def test_saving_again_keeps_the_previous_version_one_save_longer(tmp_path, index):
    first = index.save(tmp_path / "ix")
    index.remove(["item5"])
    second = index.save(tmp_path / "ix")
    assert first != second and first.exists()  # a reader that just resolved it still can
    third = index.save(tmp_path / "ix")
    left = sorted(p.name for p in (tmp_path / "ix").iterdir())
    assert left == sorted([".lock", "CURRENT", second.name, third.name])
    assert len(HashIndex.load(tmp_path / "ix")) == 29


def test_damaged_file_is_reported(tmp_path, index):
    version = index.save(tmp_path / "ix")
    with open(version / "features.npy", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\xff\xff\xff\xff")
    with pytest.raises(HashsearchError, match=r"features.npy is missing or damaged"):
        HashIndex.load(tmp_path / "ix")


def test_other_version_and_foreign_directory(tmp_path, index):
    version = index.save(tmp_path / "ix")
    manifest_path = version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(HashsearchError, match="format version 99"):
        HashIndex.load(tmp_path / "ix")
    with pytest.raises(HashsearchError, match="not a hashsearch index"):
        HashIndex.load(tmp_path)
    manifest_path.write_text("{not json")
    with pytest.raises(HashsearchError, match="damaged"):
        HashIndex.load(tmp_path / "ix")
    (tmp_path / "ix" / "CURRENT").write_text("../elsewhere\n")
    with pytest.raises(HashsearchError, match="damaged .CURRENT names"):
        HashIndex.load(tmp_path / "ix")
    old = tmp_path / "v1"
    old.mkdir()
    (old / "manifest.json").write_text(json.dumps({"format_version": 1}))
    with pytest.raises(HashsearchError, match="format version 1, this hashsearch reads version 3"):
        HashIndex.load(old)


def test_pq_bytes_must_be_positive():
    rng = np.random.default_rng(2)
    with pytest.raises(HashsearchError, match="--pq-bytes must be at least 1"):
        HashIndex.build(encoded(rng, 300), [str(i) for i in range(300)], {}, "pq", pq_bytes=0)


def test_a_reader_that_loses_the_race_with_a_writer_reads_the_new_version(
    tmp_path, index, monkeypatch
):
    from hashsearch.index import store

    index.save(tmp_path / "ix")
    real = store.HashIndex._load_version.__func__
    calls = []

    def racing(cls, directory, version, mmap):
        if not calls:  # a writer replaces the index between CURRENT and the files
            calls.append(version)
            for _ in range(2):  # two saves: the version this reader resolved is gone
                HashIndex.load(directory).save(directory)
        return real(cls, directory, version, mmap)

    monkeypatch.setattr(store.HashIndex, "_load_version", classmethod(racing))
    loaded = HashIndex.load(tmp_path / "ix")
    assert len(loaded) == 30 and calls and not calls[0].exists()


def test_editing_saves_under_the_lock_and_a_failed_edit_saves_nothing(tmp_path, index):
    index.save(tmp_path / "ix")
    (tmp_path / "ix" / "v-2023").mkdir()  # a user's folder beside the index is never removed
    with HashIndex.editing(tmp_path / "ix") as editable:
        editable.remove(["item4"])
    assert len(HashIndex.load(tmp_path / "ix")) == 29
    with pytest.raises(HashsearchError, match="nothing removed"):
        with HashIndex.editing(tmp_path / "ix") as editable:
            editable.remove(["nope"])
    assert len(HashIndex.load(tmp_path / "ix")) == 29
    assert (tmp_path / "ix" / "v-2023").is_dir()
