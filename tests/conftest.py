"""Shared fixtures: a small real slice of CIFAR-10 and an isolated decode cache."""

from __future__ import annotations

import importlib.util
import io
import os
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = Path("shared/data/cifar10-jpg.tar.gz")


def find_cifar10_jpg() -> Path:
    """$HASHSEARCH_CIFAR10_JPG, else the shared folder beside the checkout or under /work."""
    if "HASHSEARCH_CIFAR10_JPG" in os.environ:
        return Path(os.environ["HASHSEARCH_CIFAR10_JPG"])
    candidates = [REPO.parent / ARCHIVE, Path("/work") / ARCHIVE]
    return next((p for p in candidates if p.is_file()), candidates[0])


CIFAR10_JPG = find_cifar10_jpg()


def _load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module: the benchmarks are scripts, not a package, and
    import their sibling helpers (bench_options) by plain name."""
    folder = REPO / "benchmarks"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        # dataclasses look their module up in sys.modules while the class is built
        sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


@pytest.fixture(scope="session")
def load_benchmark() -> Callable[[str], ModuleType]:
    """The loader of benchmarks/<name>.py, for the tests of the benchmark scripts."""
    return _load_benchmark


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    """Tests never read or write the user's ~/.cache/hashsearch (session-wide, so that
    module- and session-scoped fixtures are covered too)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HASHSEARCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session")
def cifar10_archive() -> Path:
    """The shared CIFAR-10 JPEG archive; missing, the tests that need it fail (never skip)."""
    if not CIFAR10_JPG.is_file():
        pytest.fail(f"the CIFAR-10 archive {CIFAR10_JPG} is missing; set HASHSEARCH_CIFAR10_JPG")
    return CIFAR10_JPG


def cifar10_members(
    archive_path: Path, per_class: dict[str, int]
) -> list[tuple[tarfile.TarInfo, bytes]]:
    """The first `per_class[split]` JPEGs of each class and split of the shared archive."""
    taken: dict[tuple[str, str], int] = {}
    members = []
    with tarfile.open(archive_path) as archive:
        for member in archive:
            parts = member.name.strip("./").split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] not in per_class:
                continue
            key = (parts[0], parts[1])
            if taken.get(key, 0) < per_class[parts[0]]:
                taken[key] = taken.get(key, 0) + 1
                members.append((member, archive.extractfile(member).read()))
    return members


@pytest.fixture(scope="session")
def cifar10_slice(tmp_path_factory, cifar10_archive) -> Path:
    """A .tar.gz of real CIFAR-10 JPEGs, `<split>/<class>/<file>`: 24 train + 6 test per class."""
    path = tmp_path_factory.mktemp("cifar") / "cifar10-slice.tar.gz"
    with tarfile.open(path, "w:gz") as out:
        for member, data in cifar10_members(cifar10_archive, {"train": 24, "test": 6}):
            member.name = member.name.strip("./")
            out.addfile(member, io.BytesIO(data))
    return path
