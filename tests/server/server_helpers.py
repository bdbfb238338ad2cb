"""Helpers of the server tests (a module of its own: test files cannot import a conftest)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hashsearch.cli import main
from hashsearch.server.engine import Query


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


def outcome(query: Query) -> object:
    """A query's hits, or (status, detail) of the error that refused it."""
    error = query.answer.exception()
    return query.answer.result() if error is None else (error.status_code, error.detail)


def assert_same_answer(batched: object, alone: object) -> None:
    """Equal errors, or the same hits with scores equal to float precision (a batch of
    queries sums their cosines in another order)."""
    if isinstance(alone, tuple):
        assert batched == alone
        return
    strip = [{**hit, "score": None} for hit in alone]
    assert [{**hit, "score": None} for hit in batched] == strip
    for got, want in zip(batched, alone, strict=True):
        assert got["score"] == pytest.approx(want["score"], abs=1e-5)
