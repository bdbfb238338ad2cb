"""The CIFAR-10 loaders: the official pickled format (archives written here in the same
format), the restricted unpickler, the download check, and the image-folder route."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import pickle
import tarfile
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import hashsearch.data.cifar10 as cifar10
from hashsearch.data import load_cifar10
from hashsearch.errors import HashsearchError

CLASSES = cifar10.CIFAR10_CLASSES
BATCH_SIZES = {f"data_batch_{n}": 3 for n in range(1, 6)} | {"test_batch": 4}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASHSEARCH_CACHE", str(tmp_path / "cache"))


class Python2StylePickler(pickle._Pickler):  # the pure-Python pickler lets us change opcodes
    """Writes ``str`` and ``bytes`` as Python 2 strings, as the official batches were
    written (cPickle, protocol 2, numpy 1.x); they load back as ``bytes``."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_string(self, text: str | bytes) -> None:
        raw = text.encode("latin-1") if isinstance(text, str) else text
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + len(raw).to_bytes(4, "little") + raw)
        self.memoize(text)

    dispatch[str] = save_python2_string
    dispatch[bytes] = save_python2_string


def python2_pickle(value: object) -> bytes:
    buffer = io.BytesIO()
    Python2StylePickler(buffer, protocol=2).dump(value)
    # numpy 1.x named the array rebuilder numpy.core.multiarray, as in the real files
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def python3_pickle(value: object) -> bytes:
    return pickle.dumps(value, protocol=4)


def test_python2_style_pickle_matches_the_release_format() -> None:
    written = python2_pickle({"data": np.zeros((1, 3072), dtype=np.uint8)})
    assert written.startswith(b"\x80\x02}")
    assert b"U\x04data" in written  # a Python 2 string, not a unicode one
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in written


def make_batches(rng: np.random.Generator) -> dict[str, dict[bytes, Any]]:
    batches: dict[str, dict[bytes, Any]] = {
        name: {
            b"batch_label": name.encode(),
            b"data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
            b"labels": [int(label) for label in rng.integers(0, 10, size=count)],
            b"filenames": [f"img_{i}.png".encode() for i in range(count)],
        }
        for name, count in BATCH_SIZES.items()
    }
    batches["batches.meta"] = {
        b"label_names": [name.encode() for name in CLASSES],
        b"num_cases_per_batch": 10000,
        b"num_vis": 3072,
    }
    return batches


def write_archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, content in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def chw_rows_to_hwc(rows: np.ndarray) -> np.ndarray:
    """Written apart from the loader's reshape: channel c of pixel (y, x) is c*1024 + y*32 + x."""
    hwc = np.zeros((len(rows), 32, 32, 3), dtype=np.uint8)
    for y, x, channel in itertools.product(range(32), range(32), range(3)):
        hwc[:, y, x, channel] = rows[:, channel * 1024 + y * 32 + x]
    return hwc


@pytest.mark.parametrize("dumps", [python2_pickle, python3_pickle])
def test_official_archive_round_trips(tmp_path: Path, dumps: Callable[[object], bytes]) -> None:
    batches = make_batches(np.random.default_rng(1))
    archive = write_archive(
        tmp_path / "cifar-10-python.tar.gz", {name: dumps(b) for name, b in batches.items()}
    )
    dataset = load_cifar10(archive)
    train_names = [f"data_batch_{n}" for n in range(1, 6)]
    rows = np.concatenate([batches[name][b"data"] for name in [*train_names, "test_batch"]])
    labels = np.concatenate([batches[name][b"labels"] for name in [*train_names, "test_batch"]])
    np.testing.assert_array_equal(dataset.images, chw_rows_to_hwc(rows))
    np.testing.assert_array_equal(dataset.labels, labels)
    assert dataset.classes == CLASSES and dataset.name == "cifar10"
    assert list(dataset.splits) == ["train"] * 15 + ["test"] * 4
    assert list(dataset.ids[:2]) == ["train/0", "train/1"]
    assert list(dataset.ids[14:16]) == ["train/14", "test/0"]


def test_extracted_folder_and_its_parent_load_alike(tmp_path: Path) -> None:
    batches = make_batches(np.random.default_rng(2))
    folder = tmp_path / "extracted" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, batch in batches.items():
        (folder / name).write_bytes(python2_pickle(batch))
    from_parent = load_cifar10(folder.parent)
    from_folder = load_cifar10(folder, image_size=8)
    assert from_parent.images.shape == (19, 32, 32, 3)
    assert from_folder.images.shape == (19, 8, 8, 3)
    np.testing.assert_array_equal(from_parent.labels, from_folder.labels)
    np.testing.assert_array_equal(
        from_parent.images[:3], chw_rows_to_hwc(batches["data_batch_1"][b"data"])
    )


class RunsAShellCommand:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch pwned",))


def test_pickle_naming_another_global_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    files = {name: python2_pickle(b) for name, b in make_batches(np.random.default_rng(3)).items()}
    files["test_batch"] = python3_pickle({b"data": RunsAShellCommand(), b"labels": []})
    archive = write_archive(tmp_path / "crafted.tar.gz", files)
    with pytest.raises(HashsearchError, match=r"test_batch refers to (posix|os|nt)\.system"):
        load_cifar10(archive)
    assert not (tmp_path / "pwned").exists()


def test_missing_batch_is_named(tmp_path: Path) -> None:
    files = {name: python3_pickle(b) for name, b in make_batches(np.random.default_rng(4)).items()}
    del files["data_batch_5"]
    with pytest.raises(HashsearchError, match=r"lacks data_batch_5"):
        load_cifar10(write_archive(tmp_path / "partial.tar.gz", files))


def test_batch_of_wrong_shape_is_refused(tmp_path: Path) -> None:
    batches = make_batches(np.random.default_rng(5))
    batches["data_batch_2"][b"data"] = np.zeros((3, 100), dtype=np.uint8)
    files = {name: python3_pickle(b) for name, b in batches.items()}
    with pytest.raises(HashsearchError, match=r"data_batch_2 is not a CIFAR-10 batch"):
        load_cifar10(write_archive(tmp_path / "bad.tar.gz", files))


def write_cifar10_png_folder(root: Path, classes: tuple[str, ...]) -> Path:
    for index, name in enumerate(classes):
        for split in ("train", "test"):
            path = root / split / name / "0.png"
            path.parent.mkdir(parents=True)
            Image.new("RGB", (32, 32), (index * 20, 0, 0)).save(path)
    return root


def test_image_folder_copy_is_loaded_as_cifar10(tmp_path: Path) -> None:
    dataset = load_cifar10(write_cifar10_png_folder(tmp_path / "jpg-copy", CLASSES))
    assert dataset.name == "cifar10" and dataset.classes == CLASSES
    assert dataset.images.shape == (20, 32, 32, 3)
    assert dataset.images[dataset.labels == 3][0, 0, 0, 0] == 60


def test_image_folder_with_other_classes_is_refused(tmp_path: Path) -> None:
    folder = write_cifar10_png_folder(tmp_path / "pets", ("cat", "dog"))
    with pytest.raises(HashsearchError, match=r"pets is not CIFAR-10.*'folder' data set"):
        load_cifar10(folder)


def test_download_without_network_says_to_pass_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(url: str, destination: Path) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(cifar10, "fetch_url", no_network)
    with pytest.raises(HashsearchError, match=r"cannot download CIFAR-10.*--data PATH"):
        load_cifar10(None)
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []


def test_download_checks_md5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = b"pretend this is the CIFAR-10 archive"

    def fake_fetch(url: str, destination: Path) -> None:
        destination.write_bytes(content)

    monkeypatch.setattr(cifar10, "fetch_url", fake_fetch)
    with pytest.raises(HashsearchError, match=r"has md5 [0-9a-f]{32}, not c58f3010"):
        cifar10.download_cifar10(tmp_path)
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(cifar10, "CIFAR10_MD5", hashlib.md5(content).hexdigest())
    path = cifar10.download_cifar10(tmp_path)
    assert path == tmp_path / "cifar-10-python.tar.gz" and path.read_bytes() == content
    monkeypatch.setattr(cifar10, "fetch_url", None)  # a verified copy is not fetched again
    assert cifar10.download_cifar10(tmp_path) == path
