"""The image files of a directory or a tar archive, listed without extracting anything.

A data set often comes as one archive; reading its members in one pass over the stream
saves unpacking tens of thousands of small files to disk, and the loaders then treat a
directory and an archive alike: a sorted list of (relative path, content) pairs.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from hashsearch.data.decode import is_image_name
from hashsearch.errors import HashsearchError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")

# (path relative to the source, in POSIX form; the file's bytes, or its path on disk)
SourceFile = tuple[str, bytes | Path]


def source_name(source: Path) -> str:
    """A short name for a data set read from ``source``: its name less any archive suffix."""
    for suffix in ARCHIVE_SUFFIXES:
        if source.name.lower().endswith(suffix):
            return source.name[: -len(suffix)]
    return source.name


def is_hidden(relative_path: PurePosixPath) -> bool:
    """Hidden files and anything in a hidden folder (``.git/``, macOS ``._x.jpg``) are skipped."""
    return any(part.startswith(".") for part in relative_path.parts)


def existing_source(path: str | Path) -> Path:
    """``path`` made absolute, or a clear error if it does not exist."""
    source = Path(path).expanduser().absolute()
    if not source.exists():
        raise HashsearchError(
            f"{source} does not exist; pass --data with an image folder or a .tar.gz of one"
        )
    return source


def list_image_files(source: Path) -> list[SourceFile]:
    """The non-hidden image files under ``source`` (a directory or a tar archive), sorted.

    Files in a directory come as paths, so a decoder reads them itself; archive members
    come as bytes, read in one pass over the (compressed) stream.
    """
    files = _directory_files(source) if source.is_dir() else _archive_files(source)
    return sorted(files, key=lambda file: file[0])


def _directory_files(directory: Path) -> list[SourceFile]:
    files: list[SourceFile] = []
    for root, subdirs, names in os.walk(directory, onerror=_refuse_unreadable):
        subdirs[:] = [name for name in subdirs if not name.startswith(".")]
        for name in names:
            relative = PurePosixPath(Path(root, name).relative_to(directory).as_posix())
            if is_image_name(name) and not is_hidden(relative):
                files.append((str(relative), Path(root, name)))
    return files


def _refuse_unreadable(error: OSError) -> None:
    """os.walk would skip an unreadable folder silently, losing its images."""
    raise HashsearchError(f"cannot read {error.filename} ({error.strerror}); check permissions")


def _archive_files(archive: Path) -> list[SourceFile]:
    files: list[SourceFile] = []
    try:
        if not tarfile.is_tarfile(archive):
            raise HashsearchError(
                f"{archive} is neither a directory nor a tar archive; "
                f"pass an image folder or a {', '.join(ARCHIVE_SUFFIXES)} file of one"
            )
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                relative = PurePosixPath(member.name)
                if member.isfile() and is_image_name(member.name) and not is_hidden(relative):
                    content = tar.extractfile(member)
                    assert content is not None, member.name
                    files.append((str(relative), content.read()))
            if not _ends_complete(tar):
                raise tarfile.ReadError(f"it ends at byte {tar.offset} without the end marker")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise HashsearchError(
            f"cannot read archive {archive} ({exc}); re-download or re-create it"
        ) from exc
    return files


def _ends_complete(tar: tarfile.TarFile) -> bool:
    """Whether the listing stopped at the zero block that ends a tar archive.

    tarfile takes a damaged, truncated or missing header after the first for the end of
    the archive and stops quietly, which would load a cut or corrupted download as a
    smaller data set.
    """
    assert tar.fileobj is not None
    tar.fileobj.seek(tar.offset)
    return tar.fileobj.read(tarfile.BLOCKSIZE) == bytes(tarfile.BLOCKSIZE)
