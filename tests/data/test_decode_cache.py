"""The decode cache: keys, hits, atomic writes and rebuilding damaged entries."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import hashsearch.data.cache as cache
from hashsearch.data.dataset import ImageDataset


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HASHSEARCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def small_dataset(seed: int = 0) -> ImageDataset:
    rng = np.random.default_rng(seed)
    return ImageDataset(
        images=rng.integers(0, 256, size=(4, 3, 2, 3), dtype=np.uint8),
        labels=np.array([0, 1, 1, 0], dtype=np.int64),
        classes=("a", "b"),
        ids=np.array(["x/0", "x/1", "y/0", "y/1"]),
        splits=np.array(["train", "train", "test", ""]),
        name="small",
    )


class CountingBuilder:
    def __init__(self, seed: int = 0) -> None:
        self.calls = 0
        self.seed = seed

    def __call__(self) -> ImageDataset:
        self.calls += 1
        return small_dataset(self.seed)


def assert_same(loaded: ImageDataset, expected: ImageDataset) -> None:
    np.testing.assert_array_equal(loaded.images, expected.images)
    np.testing.assert_array_equal(loaded.labels, expected.labels)
    assert loaded.classes == expected.classes and loaded.name == expected.name
    assert list(loaded.ids) == list(expected.ids) and list(loaded.splits) == list(expected.splits)


def test_cache_dir_follows_environment(
    private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cache.cache_dir() == private_cache
    monkeypatch.delenv("HASHSEARCH_CACHE")
    assert cache.cache_dir() == Path.home() / ".cache" / "hashsearch"


def test_second_call_reads_the_stored_entry(tmp_path: Path, private_cache: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"v1")
    build = CountingBuilder()
    first = cache.cached_dataset(source, {"image_size": None}, build)
    second = cache.cached_dataset(source, {"image_size": None}, build)
    assert build.calls == 1
    assert isinstance(first.images, np.memmap) and isinstance(second.images, np.memmap)
    assert_same(second, small_dataset())
    entries = [path.name for path in private_cache.iterdir()]
    assert len(entries) == 1 and entries[0].startswith("source_bin-")  # no temporary left


def test_key_changes_with_source_and_options(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"v1")
    key = cache.cache_key(source, {"image_size": None})
    assert cache.cache_key(source, {"image_size": 64}) != key
    source.write_bytes(b"v2 is longer")
    assert cache.cache_key(source, {"image_size": None}) != key


def test_directory_key_sees_edits_inside_subfolders(tmp_path: Path) -> None:
    image = tmp_path / "folder" / "cats" / "a.png"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"one")
    key = cache.cache_key(tmp_path / "folder", {})
    image.write_bytes(b"other content")
    os.utime(image, ns=(1, 1))
    assert cache.cache_key(tmp_path / "folder", {}) != key


def test_damaged_entry_is_rebuilt(tmp_path: Path, private_cache: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"v1")
    build = CountingBuilder()
    cache.cached_dataset(source, {}, build)
    (entry,) = private_cache.iterdir()
    images = entry / "images.npy"
    images.write_bytes(images.read_bytes()[:-10])  # truncated, as by a full disk
    assert_same(cache.cached_dataset(source, {}, build), small_dataset())
    assert build.calls == 2
    (entry / "meta.json").write_text('{"cache_format": 1, "count": 4')
    cache.cached_dataset(source, {}, build)
    assert build.calls == 3


def test_interrupted_write_leaves_no_entry(
    tmp_path: Path, private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"v1")
    real_save = np.save

    def save_then_interrupt(path: Path, array: np.ndarray) -> None:
        real_save(path, array)
        if Path(path).name == "labels.npy":
            raise KeyboardInterrupt

    monkeypatch.setattr(cache.np, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        cache.cached_dataset(source, {}, CountingBuilder())
    assert list(private_cache.iterdir()) == []


def test_unwritable_cache_still_returns_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("HASHSEARCH_CACHE", str(blocker / "cache"))
    source = tmp_path / "source.bin"
    source.write_bytes(b"v1")
    with pytest.warns(UserWarning, match=r"could not store the decode cache.*HASHSEARCH_CACHE"):
        dataset = cache.cached_dataset(source, {}, CountingBuilder())
    assert_same(dataset, small_dataset())
