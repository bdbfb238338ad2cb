"""Helpers of the server tests (a module of its own: test files cannot import a conftest)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hashsearch.cli import main


def cli(*args: str | Path) -> None:
    """Run a `hashsearch` command in this process; it must succeed."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["hashsearch", *map(str, args)])
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, exc.code


def post_image(client, path: Path, **params):
    """POST /search with the file at `path` as the upload."""
    return client.post("/search", params=params, files={"image": (path.name, path.read_bytes())})
