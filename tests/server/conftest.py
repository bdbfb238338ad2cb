"""One tiny model and index of real CIFAR-10 images, shared by the server tests."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_helpers import cli
from test_cli import TINY

from hashsearch.server import create_app


@pytest.fixture(scope="package")
def served_index(cifar10_slice, tmp_path_factory) -> Path:
    """An index of the slice's 240 training images, by a 2-epoch 16-bit SAEH model."""
    root = tmp_path_factory.mktemp("served")
    cli(
        "train", "--dataset", "cifar10", "--data", cifar10_slice, "--protocol", "cifar10-2",
        "--bits", "16", "--epochs", "2", "--seed", "3", "--out", root / "run", "--no-progress",
        *TINY,
    )  # fmt: skip
    cli("index", "--run", root / "run", "--out", root / "index")
    return root / "index"


@pytest.fixture(scope="package")
def query_files(cifar10_slice, tmp_path_factory) -> list[Path]:
    """The slice's 60 test images as files, in archive order (`test/<class>/<file>`)."""
    folder = tmp_path_factory.mktemp("queries")
    with tarfile.open(cifar10_slice) as archive:
        members = [m for m in archive.getmembers() if m.isfile() and m.name.startswith("test/")]
        archive.extractall(folder, members=members, filter="data")
    return [folder / m.name for m in members]


@pytest.fixture(scope="package")
def client(served_index) -> TestClient:
    """A client of the index's app that sees a server error as a 500, as a real client does."""
    with TestClient(create_app(served_index), raise_server_exceptions=False) as client:
        yield client
