"""Multi-label data from a list file: an image path, then a 0/1 flag per class, per line.

    images/0001.jpg 0 1 0 0 1
    images/0002.jpg 1 0 0 0 0

This is the format the NUS-WIDE and MS-COCO hashing benchmarks ship (DPSH,
HashNet, ADSH releases). Paths are relative to the list file's folder (absolute
ones are taken as they are); an optional `classes.txt` beside the list names the
classes, one per line, else they are `class0`, `class1`, .... Two items are
relevant to each other when they share a label (`hashsearch.metrics`).

The list has no split of its own, so it goes with a protocol that draws one
(`holdout`). A line with another number of flags, a flag that is not 0 or 1, an
item with no label, an image listed twice, or a missing image is refused, naming the
file and line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from hashsearch.data.cache import cached_dataset
from hashsearch.data.dataset import ImageDataset
from hashsearch.data.decode import check_image_size, decode_images
from hashsearch.data.folder import stack_one_size
from hashsearch.data.sources import existing_source
from hashsearch.errors import HashsearchError


def load_list_file(path: str | Path, image_size: int | None = None) -> ImageDataset:
    """Load a multi-label list file, decoding its images through the cache."""
    check_image_size(image_size)
    source = existing_source(path)
    if not source.is_file():
        raise HashsearchError(f"{source} is not a list file; pass the .txt file itself")
    options = {"loader": "list-file", "image_size": image_size, "files": listed_state(source)}
    return cached_dataset(source, options, lambda: read_list_file(source, image_size))


def listed_state(source: Path) -> str:
    """A digest of the size and mtime of every listed image and of `classes.txt`: the
    cache keys on the list file, and replacing an image it names must not serve stale
    pixels."""
    digest = hashlib.sha256()
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""  # read_list_file reports it
    names = [line.split()[0] for line in text.splitlines() if line.strip()]
    for name in [*names, "classes.txt"]:
        path = source.parent / name
        stat = path.stat() if path.is_file() else None
        digest.update(f"{name}\0{stat and stat.st_size}\0{stat and stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def parse_line(line: str, where: str, width: int | None) -> tuple[str, list[int]]:
    """(path, flags) of one line, after checking its flags."""
    path, *flags = line.split()
    if not flags or any(flag not in ("0", "1") for flag in flags):
        raise HashsearchError(f"{where}: expected `path 0 1 ...` (flags 0 or 1), got {line!r}")
    if width is not None and len(flags) != width:
        raise HashsearchError(f"{where}: {len(flags)} label flags, the first line has {width}")
    if "1" not in flags:
        raise HashsearchError(f"{where}: {path} has no label; drop the line or label it")
    return path, [int(flag) for flag in flags]


def read_list_file(source: Path, image_size: int | None) -> ImageDataset:
    line_of: dict[str, int] = {}  # path -> its line, in list order
    rows: list[list[int]] = []
    for number, line in enumerate(text_lines(source), 1):
        if line.strip():
            where = f"{source}:{number}"
            path, flags = parse_line(line, where, len(rows[0]) if rows else None)
            if path in line_of:  # ids must be unique, or indexing fails after training
                raise HashsearchError(
                    f"{where}: {path} is listed twice (first on line {line_of[path]}); "
                    "keep one line per image"
                )
            line_of[path] = number
            rows.append(flags)
    paths = list(line_of)
    if not rows:
        raise HashsearchError(f"{source} lists no images; expected lines `path 0 1 ...`")
    files = [(path, source.parent / path) for path in paths]
    missing = [path for path, file in files if not file.is_file()]
    if missing:
        raise HashsearchError(f"{source} lists {missing[0]}, which does not exist")
    return ImageDataset(
        images=stack_one_size(paths, decode_images(files, image_size)),
        labels=np.array(rows, dtype=np.uint8),
        classes=class_names(source, len(rows[0])),
        ids=np.array(paths, dtype=str),
        splits=np.full(len(paths), "", dtype=str),
        name=source.stem,
    )


def text_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file; anything else (an image or archive passed by
    mistake) is refused."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise HashsearchError(
            f"{path} is not a UTF-8 text file (byte {exc.start}: {exc.reason}); "
            "pass a list file of lines `path 0 1 ...`"
        ) from None


def class_names(source: Path, count: int) -> tuple[str, ...]:
    """Names from `classes.txt` beside the list, if there is one, else class0, class1, ..."""
    named = source.parent / "classes.txt"
    if not named.is_file():
        return tuple(f"class{i}" for i in range(count))
    names = tuple(line.strip() for line in text_lines(named) if line.strip())
    if len(names) != count:
        raise HashsearchError(f"{named} names {len(names)} classes, the list file has {count}")
    return names
