"""The image-folder loader, on a slice of the real CIFAR-10 JPEG archive and on small
folders written here."""

from __future__ import annotations

import io
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import hashsearch.data.decode as decode_module
import hashsearch.data.folder as folder_module
from hashsearch.data import load_image_folder
from hashsearch.errors import HashsearchError

CIFAR10_CLASSES = tuple("airplane automobile bird cat deer dog frog horse ship truck".split())
PER_CLASS = 3


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("HASHSEARCH_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def real_slice(
    tmp_path_factory: pytest.TempPathFactory, cifar10_archive: Path
) -> tuple[Path, dict[str, bytes]]:
    """A .tar.gz of PER_CLASS real JPEGs per class and split, and their bytes by path."""
    picked: dict[str, bytes] = {}
    taken: Counter[str] = Counter()
    with tarfile.open(cifar10_archive, "r:gz") as tar:
        for member in tar:
            split_and_class = member.name.rsplit("/", 1)[0]
            if member.isfile() and taken[split_and_class] < PER_CLASS:
                taken[split_and_class] += 1
                picked[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    archive = tmp_path_factory.mktemp("slice") / "cifar10-slice.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in reversed(list(picked)):  # stored unsorted: the loader must sort
            info = tarfile.TarInfo(name)
            info.size = len(picked[name])
            tar.addfile(info, io.BytesIO(picked[name]))
    return archive, picked


def write_png(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_real_slice_loads_with_split_layout(real_slice: tuple[Path, dict[str, bytes]]) -> None:
    archive, picked = real_slice
    dataset = load_image_folder(archive)
    assert dataset.images.shape == (2 * 10 * PER_CLASS, 32, 32, 3)
    assert dataset.classes == CIFAR10_CLASSES
    assert list(dataset.ids) == sorted(picked)
    assert dataset.name == "cifar10-slice"
    for index, item_id in enumerate(dataset.ids):
        split, class_name, _ = item_id.split("/")
        assert dataset.splits[index] == split
        assert dataset.classes[dataset.labels[index]] == class_name
        expected = np.asarray(Image.open(io.BytesIO(picked[item_id])).convert("RGB"))
        np.testing.assert_array_equal(dataset.images[index], expected)
    assert sorted(set(dataset.splits)) == ["test", "train"]


def test_second_load_is_a_cache_hit(
    real_slice: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, _ = real_slice
    first = load_image_folder(archive)

    def refuse_to_decode(*args: object) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(folder_module, "decode_images", refuse_to_decode)
    second = load_image_folder(archive)
    assert isinstance(second.images, np.memmap)
    np.testing.assert_array_equal(second.images, first.images)
    assert list(second.ids) == list(first.ids) and second.classes == first.classes


def test_process_pool_gives_the_serial_result(
    real_slice: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, picked = real_slice
    files = sorted(picked.items())
    serial = [decode_module.decode_images(files, size) for size in (None, 16)]
    monkeypatch.setattr(decode_module, "_PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(decode_module, "_FILES_PER_TASK", 7)
    pooled = [decode_module.decode_images(files, size) for size in (None, 16)]
    for serial_images, pooled_images in zip(serial, pooled, strict=True):
        np.testing.assert_array_equal(np.stack(pooled_images), np.stack(serial_images))
    assert pooled[1][0].shape == (16, 16, 3)
    broken = [*files[:20], ("train/cat/broken.jpg", b"not a jpeg"), *files[20:]]
    with pytest.raises(HashsearchError, match=r"train/cat/broken\.jpg"):
        decode_module.decode_images(broken, None)


def test_class_layout_folder(tmp_path: Path) -> None:
    write_png(tmp_path / "data" / "red" / "a.png", (5, 4), (255, 0, 0))
    write_png(tmp_path / "data" / "blue" / "b.PNG", (5, 4), (0, 0, 255))
    write_png(tmp_path / "data" / "blue" / "c.png", (5, 4), (0, 0, 200))
    (tmp_path / "data" / "blue" / "notes.txt").write_text("not an image")
    (tmp_path / "data" / "blue" / "._c.png").write_bytes(b"macOS metadata, not a PNG")
    (tmp_path / "data" / ".thumbs").mkdir()
    (tmp_path / "data" / ".thumbs" / "x.png").write_bytes(b"hidden folder")
    dataset = load_image_folder(tmp_path / "data")
    assert dataset.images.shape == (3, 4, 5, 3)
    assert dataset.classes == ("blue", "red")
    assert list(dataset.ids) == ["blue/b.PNG", "blue/c.png", "red/a.png"]
    assert list(dataset.labels) == [0, 0, 1]
    assert list(dataset.splits) == ["", "", ""]
    assert tuple(dataset.images[2, 0, 0]) == (255, 0, 0)
    assert tuple(dataset.images[1, 3, 4]) == (0, 0, 200)


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    write_png(tmp_path / "cats" / "good.png", (4, 4), (1, 2, 3))
    (tmp_path / "cats" / "x.jpg").write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(HashsearchError, match=r"cats/x\.jpg.*remove or replace"):
        load_image_folder(tmp_path)


def test_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    write_png(tmp_path / "a" / "small.png", (4, 4), (10, 20, 30))
    write_png(tmp_path / "b" / "large.png", (6, 8), (10, 20, 30))
    with pytest.raises(HashsearchError, match=r"a/small\.png.*b/large\.png.*--image-size"):
        load_image_folder(tmp_path)
    dataset = load_image_folder(tmp_path, image_size=5)
    assert dataset.images.shape == (2, 5, 5, 3)
    assert np.all(dataset.images == np.array([10, 20, 30], dtype=np.uint8))


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(HashsearchError, match=r"does-not-exist.*does not exist.*--data"):
        load_image_folder(tmp_path / "does-not-exist")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    (tmp_path / "empty" / "cats" / "readme.txt").write_text("no images")
    with pytest.raises(HashsearchError, match=r"empty.*holds no image files"):
        load_image_folder(tmp_path / "empty")


def test_mixed_layout_is_refused(tmp_path: Path) -> None:
    write_png(tmp_path / "cats" / "a.png", (4, 4), (0, 0, 0))
    write_png(tmp_path / "train" / "dogs" / "b.png", (4, 4), (0, 0, 0))
    with pytest.raises(HashsearchError, match=r"one layout.*cats/a\.png.*train/dogs/b\.png"):
        load_image_folder(tmp_path)


def test_file_that_is_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "images.tar.gz").write_bytes(b"not a tar archive at all")
    with pytest.raises(HashsearchError, match=r"images\.tar\.gz.*neither a directory nor a tar"):
        load_image_folder(tmp_path / "images.tar.gz")


@pytest.mark.parametrize("image_size", [0, -3, 2.5, True])
def test_bad_image_size(tmp_path: Path, image_size: object) -> None:
    write_png(tmp_path / "a" / "x.png", (4, 4), (0, 0, 0))
    with pytest.raises(HashsearchError, match=r"positive integer.*--image-size"):
        load_image_folder(tmp_path, image_size=image_size)  # type: ignore[arg-type]
