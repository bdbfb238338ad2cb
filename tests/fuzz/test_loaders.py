"""The data loaders on generated sources: image folders and tar archives of every shape,
list files of every kind of line, protocols on unbalanced classes.

A source either loads exactly what it holds or is refused with one line that names the
folder, archive, list file or image at fault; never a partial load, never a traceback.
Generated: folder trees as directories and archives (120), truncated and damaged archives
(80 + 80), list files (100 + 60), class sizes under a protocol (60), data set names (20);
parametrized: 9 layouts and files that are not images. About 530 cases.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from fuzz_helpers import FUZZ, assert_one_line, encoded, noise_image, refused
from hypothesis import given, settings
from hypothesis import strategies as st

from hashsearch.data import list_datasets, load_dataset
from hashsearch.data.dataset import ImageDataset
from hashsearch.data.decode import decode_image, is_image_name
from hashsearch.data.folder import load_image_folder
from hashsearch.data.listfile import load_list_file
from hashsearch.data.protocols import PROTOCOLS, make_splits
from hashsearch.errors import HashsearchError

CLASS_NAMES = ("cat", "dog", "Bird", "two words", "çà")
EXTENSIONS = (".png", ".PNG", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif")
FORMAT_OF = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".webp": "WEBP",
    ".tif": "TIFF",
}
NOT_IMAGES = {
    "notes.txt": b"not an image",
    "Thumbs.db": b"\x00" * 64,
    ".DS_Store": b"Bud1",
    "._0.png": b"AppleDouble",
}
GARBAGE = b"\x89PNG\r\n\x1a\n but then nothing a decoder can read"


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder per generated example (pytest's tmp_path is one per test)."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def archive(root: Path, files: dict[str, bytes], suffix: str) -> Path:
    path = root / f"images{suffix}"
    with tarfile.open(path, "w:gz" if suffix.endswith("gz") else "w") as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


def images_of(files: dict[str, bytes]) -> list[str]:
    """The names a loader must take as images: image extension, no hidden part."""
    return sorted(name for name in files if is_image_name(name) and "/." not in f"/{name}")


@st.composite
def trees(draw: st.DrawFn) -> tuple[dict[str, bytes], set[str], int | None]:
    """Files of an image folder (path -> bytes), the empty class folders to create, and
    the --image-size to load with: class or split layout, classes of 0-3 images of any
    format and mode, maybe mixed sizes, other files, a damaged image or a stray one."""
    split_layout = draw(st.booleans())
    tops = ("train/", "test/") if split_layout else ("",)
    classes = draw(st.lists(st.sampled_from(CLASS_NAMES), min_size=1, max_size=3, unique=True))
    mixed_sizes = draw(st.booleans())
    files, empty = {}, set()
    for top in tops:
        for name in classes:
            count = draw(st.integers(0, 3))
            if count == 0:
                empty.add(f"{top}{name}")
            for i in range(count):
                extension = draw(st.sampled_from(EXTENSIONS))
                mode = draw(st.sampled_from(("L", "RGB", "RGBA", "P", "1")))
                size = (draw(st.integers(3, 9)), draw(st.integers(3, 9))) if mixed_sizes else (6, 5)
                fmt = FORMAT_OF[extension.lower()]
                image = noise_image("L" if fmt == "JPEG" else mode, size, seed=i)
                files[f"{top}{name}/{i}{extension}"] = encoded(image, fmt)
            if draw(st.booleans()):
                extra = draw(st.sampled_from(sorted(NOT_IMAGES)))
                files[f"{top}{name}/{extra}"] = NOT_IMAGES[extra]
    if images_of(files) and draw(st.booleans()):
        files[draw(st.sampled_from(images_of(files)))] = GARBAGE
    if draw(st.integers(0, 9)) == 7:  # one image at another depth than the rest
        stray = draw(st.sampled_from(("stray.png", "a/b/c/d.png")))
        files[stray] = encoded(noise_image("RGB", (6, 5)))
    return files, empty, draw(st.none() | st.integers(1, 8))


def expected_refusal(files: dict[str, bytes], image_size: int | None) -> tuple[str, ...] | None:
    """What the loader must say about `files`, in the order it checks; None: it loads."""
    images = images_of(files)
    if not images:
        return ("holds no image files",)
    depths = {len(PurePosixPath(name).parts) for name in images}
    if len(depths) > 1 or not depths <= {2, 3}:
        return ("does not have one layout",)
    damaged = [name for name in images if files[name] == GARBAGE]
    if damaged:
        return (damaged[0], "cannot decode")
    shapes = {decode_image(files[name], name).shape for name in images}
    if image_size is None and len(shapes) > 1:
        return ("differ in size", "--image-size")
    return None


def check_loaded(dataset: ImageDataset, files: dict[str, bytes], image_size: int | None) -> None:
    """Every image, in path order, decoded as `decode_image` does, labelled by its folder."""
    images = images_of(files)
    assert list(dataset.ids) == images
    classes = sorted({PurePosixPath(name).parts[-2] for name in images})
    assert dataset.classes == tuple(classes)
    for row, name in enumerate(images):
        assert classes[dataset.labels[row]] == PurePosixPath(name).parts[-2]
        assert np.array_equal(dataset.images[row], decode_image(files[name], name, image_size))


@settings(FUZZ, max_examples=120)
@given(tree=trees(), form=st.sampled_from(("folder", ".tar", ".tar.gz")))
def test_generated_image_folders_load_exactly_or_are_refused(tree, form) -> None:
    files, empty, image_size = tree
    with scratch() as root:
        write_tree(root / "data", files)
        for folder in empty:
            (root / "data" / folder).mkdir(parents=True, exist_ok=True)
        source = root / "data" if form == "folder" else archive(root, files, form)
        fragments = expected_refusal(files, image_size)
        if fragments is None:
            check_loaded(load_image_folder(source, image_size), files, image_size)
        else:
            refused(lambda: load_image_folder(source, image_size), *fragments)


def sample_archive_files() -> dict[str, bytes]:
    return {
        f"{name}/{i}.png": encoded(noise_image("RGB", (6, 5), seed=i))
        for name in ("a", "b")
        for i in range(3)
    }


def loads_whole_or_refuses(source: Path) -> None:
    """A damaged archive loads all six images (the damage was in padding) or is refused."""
    try:
        dataset = load_image_folder(source)
    except HashsearchError as exc:
        assert_one_line(str(exc))
        assert source.name in str(exc) or ".png" in str(exc), str(exc)
        return
    assert len(dataset) == 6, f"{source.name} lost images silently: {list(dataset.ids)}"


@settings(FUZZ, max_examples=80)
@given(suffix=st.sampled_from((".tar", ".tar.gz")), cut=st.floats(0, 1, exclude_max=True))
def test_truncated_archives(suffix, cut) -> None:
    with scratch() as root:
        path = archive(root, sample_archive_files(), suffix)
        path.write_bytes(path.read_bytes()[: int(cut * path.stat().st_size)])
        loads_whole_or_refuses(path)


@settings(FUZZ, max_examples=80)
@given(
    suffix=st.sampled_from((".tar", ".tar.gz")),
    flips=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4
    ),
)
def test_damaged_archives(suffix, flips) -> None:
    with scratch() as root:
        path = archive(root, sample_archive_files(), suffix)
        data = bytearray(path.read_bytes())
        for where, mask in flips:
            data[int(where * len(data))] ^= mask
        path.write_bytes(bytes(data))
        loads_whole_or_refuses(path)


BAD_LAYOUTS = {
    "empty folder": ({}, "holds no image files"),
    "only other files": ({"cat/notes.txt": b"x"}, "holds no image files"),
    "only hidden images": ({".hidden/a/0.png": b"x", "cat/._0.png": b"y"}, "holds no image files"),
    "images at the top": ({"0.png": None}, "does not have one layout"),
    "too deep": ({"a/b/c/0.png": None}, "does not have one layout"),
    "mixed depths": ({"cat/0.png": None, "train/dog/1.png": None}, "does not have one layout"),
    "text named .jpg": ({"cat/0.png": None, "cat/1.jpg": b"hello"}, "cat/1.jpg"),
    "empty .png": ({"cat/0.png": None, "dog/1.png": b""}, "dog/1.png"),
    "two sizes": ({"cat/0.png": None, "dog/1.png": "big"}, "differ in size"),
}


@pytest.mark.parametrize("case", BAD_LAYOUTS)
def test_bad_layouts_are_refused_naming_the_cause(tmp_path: Path, case: str) -> None:
    layout, fragment = BAD_LAYOUTS[case]
    small, big = encoded(noise_image("RGB", (6, 5))), encoded(noise_image("RGB", (9, 9)))
    files = {
        name: small if data is None else big if data == "big" else data
        for name, data in layout.items()
    }
    write_tree(tmp_path / "data", files)
    (tmp_path / "data").mkdir(exist_ok=True)
    refused(lambda: load_image_folder(tmp_path / "data"), fragment)


def test_files_that_cannot_be_read_are_named(tmp_path: Path) -> None:
    image = encoded(noise_image("RGB", (6, 5)))
    write_tree(tmp_path / "data", {"cat/0.png": image, "dog/1.png": image})
    os.mkfifo(tmp_path / "data" / "dog" / "pipe.png")
    refused(lambda: load_image_folder(tmp_path / "data"), "dog/pipe.png", "not a regular file")
    (tmp_path / "data" / "dog" / "pipe.png").unlink()
    (tmp_path / "data" / "dog" / "moved.png").symlink_to(tmp_path / "elsewhere.png")
    refused(lambda: load_image_folder(tmp_path / "data"), "dog/moved.png", "does not exist")


def test_unbalanced_classes_load_and_one_class_is_a_data_set(tmp_path: Path) -> None:
    image = encoded(noise_image("RGB", (6, 5)))
    files = {f"many/{i}.png": image for i in range(9)} | {"one/0.png": image}
    write_tree(tmp_path / "data", files)
    (tmp_path / "data" / "none").mkdir()  # an empty class folder is no class
    dataset = load_image_folder(tmp_path / "data")
    assert dataset.classes == ("many", "one") and np.bincount(dataset.labels).tolist() == [9, 1]
    write_tree(tmp_path / "single", {f"only/{i}.png": image for i in range(3)})
    assert load_image_folder(tmp_path / "single").classes == ("only",)


@settings(FUZZ, max_examples=60)
@given(
    counts=st.lists(st.integers(0, 12), min_size=1, max_size=4),
    protocol=st.sampled_from(PROTOCOLS.names()),
    val=st.none() | st.integers(1, 3) | st.floats(0.05, 0.9),
)
def test_protocols_on_unbalanced_classes_split_or_refuse(counts, protocol, val) -> None:
    labels = np.repeat(np.arange(len(counts)), counts)
    dataset = ImageDataset(
        images=np.zeros((len(labels), 2, 2, 3), np.uint8),
        labels=labels.astype(np.int64),
        classes=tuple(f"c{i}" for i in range(len(counts))),
        ids=np.array([f"{i}" for i in range(len(labels))]),
        splits=np.array(["train", "test"] * len(labels))[: len(labels)],
        name="unbalanced",
    )
    try:
        splits = make_splits(dataset, protocol, 0, val)
    except HashsearchError as exc:
        assert_one_line(str(exc))
        return
    assert min(splits.sizes().values()) > 0 and len(splits.train) >= 2
    assert not set(splits.train) & set(splits.val)


GOOD_PATHS = ("img/a.png", "img/b.jpg", "img/c.gif", "img/d.bmp", "img/e.tif")
BAD_PATHS = (
    "img/bad.png",
    "img/big.png",
    "img/notes.txt",
    "img/none.png",
    "img",
    "/nowhere/x.png",
    "img/a.png#",
)


def write_list_folder(root: Path) -> None:
    files = {
        path: encoded(noise_image("L", (6, 5), seed=i), FORMAT_OF[path[-4:]])
        for i, path in enumerate(GOOD_PATHS)
    }
    write_tree(
        root,
        files
        | {
            "img/bad.png": GARBAGE,
            "img/notes.txt": b"not an image",
            "img/big.png": encoded(noise_image("RGB", (9, 9))),
        },
    )


@st.composite
def list_texts(draw: st.DrawFn) -> str:
    """A list file's text: valid lines of one width, then maybe a bad line of any kind
    (bad path, bad flag, other width, no label, garbage) and blank lines."""
    width = draw(st.integers(1, 4))
    flags = st.lists(st.sampled_from("01"), min_size=width, max_size=width).filter(
        lambda row: "1" in row
    )
    good = st.tuples(st.sampled_from(GOOD_PATHS), flags)
    lines = [
        " ".join([path, *row])
        for path, row in draw(
            st.lists(good, min_size=1, max_size=4, unique_by=lambda line: line[0])
        )
    ]
    bad = st.one_of(
        st.builds(lambda path, row: " ".join([path, *row]), st.sampled_from(BAD_PATHS), flags),
        st.builds(
            lambda row: " ".join(["img/a.png", *row]),
            st.lists(st.sampled_from(("0", "1", "2", "-1", "01", "1.0", "x")), max_size=5),
        ),
        st.text(max_size=20),
    )
    for line in draw(st.lists(bad | st.just(""), max_size=2)):
        lines.insert(draw(st.integers(0, len(lines))), line)
    return "\n".join(lines)


def parsed_lines(text: str) -> list[tuple[str, list[int]]]:
    return [
        (line.split()[0], [int(f) for f in line.split()[1:]])
        for line in text.splitlines()
        if line.strip()
    ]


@settings(FUZZ, max_examples=100)
@given(text=list_texts(), classes=st.none() | st.integers(1, 4))
def test_generated_list_files_load_exactly_or_name_the_file(text, classes) -> None:
    with scratch() as root:
        write_list_folder(root)
        (root / "list.txt").write_text(text)
        if classes is not None:
            (root / "classes.txt").write_text("".join(f"name{i}\n" for i in range(classes)))
        try:
            dataset = load_list_file(root / "list.txt")
        except HashsearchError as exc:
            assert_one_line(str(exc))
            assert any(name in str(exc) for name in ("list.txt", "classes.txt", *BAD_PATHS)), exc
            return
        lines = parsed_lines(text)
        assert list(dataset.ids) == [path for path, _ in lines]
        assert dataset.labels.tolist() == [flags for _, flags in lines]


@settings(FUZZ, max_examples=60)
@given(data=st.binary(max_size=200))
def test_list_files_of_random_bytes(data) -> None:
    with scratch() as root:
        write_list_folder(root)
        (root / "list.txt").write_bytes(data)
        try:
            load_list_file(root / "list.txt")
        except HashsearchError as exc:
            assert_one_line(str(exc), "list.txt")


def test_a_list_file_naming_an_image_twice_is_refused(tmp_path: Path) -> None:
    write_list_folder(tmp_path)
    (tmp_path / "list.txt").write_text("img/a.png 1 0\nimg/b.jpg 0 1\nimg/a.png 0 1\n")
    refused(lambda: load_list_file(tmp_path / "list.txt"), "list.txt:3", "img/a.png", "line 1")


@settings(FUZZ, max_examples=20)
@given(name=st.text(max_size=12).filter(lambda name: name not in list_datasets()))
def test_unknown_data_set_names(name) -> None:
    refused(lambda: load_dataset(name, "/nowhere"), "unknown data set", repr(name))
