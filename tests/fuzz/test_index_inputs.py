"""HashIndex with generated bad input: items of other bit counts, feature sizes, label
shapes and counts, duplicate and unknown ids, a crash at every step of a save, and a
model that is not the index's.

A refused change leaves the index as it was, in memory and on disk (every file hashed
before and after). Generated: builds (60), additions (80), ids to add (50) and remove
(50), failures injected into saves (40). About 280 cases.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from fuzz_helpers import FUZZ, assert_one_line, fresh_copy, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from hashsearch import api
from hashsearch.encoding import Encoded
from hashsearch.errors import HashsearchError
from hashsearch.index import HashIndex, store

BYTES, DIM, COUNT = 2, 5, 30  # the base index: 16-bit codes, 5-d features, 30 items


def items(count: int, code_bytes: int = BYTES, dim: int = DIM, seed: int = 0, labels=None):
    rng = np.random.default_rng(seed)
    return Encoded(
        rng.integers(0, 256, (count, code_bytes), dtype=np.uint8),
        rng.standard_normal((count, dim)).astype(np.float32),
        rng.integers(0, 3, count) if labels is None else labels,
    )


def base_index() -> HashIndex:
    ids = [f"item{i}" for i in range(COUNT)]
    return HashIndex.build(items(COUNT), ids, {"method": "saeh", "classes": ["a", "b", "c"]})


def unchanged(index: HashIndex, reference: HashIndex) -> bool:
    return (
        index.ids == reference.ids
        and np.array_equal(index.codes(), reference.codes())
        and np.array_equal(index.features(), reference.features())
        and np.array_equal(index.labels, reference.labels)
    )


@settings(FUZZ, max_examples=60)
@given(
    count=st.integers(0, 6),
    ids=st.integers(0, 6),
    code_bytes=st.integers(0, 40),
    dim=st.integers(0, 6),
    form=st.sampled_from(["auto", "float32", "float16", "int8", "pq", "jpeg"]),
)
def test_builds_of_any_shape_index_or_refuse(count, ids, code_bytes, dim, form) -> None:
    encoded = items(count, code_bytes, dim)
    try:
        index = HashIndex.build(encoded, [f"i{i}" for i in range(ids)], {}, features=form)
    except HashsearchError as exc:
        assert_one_line(str(exc))
        return
    assert len(index) == count == ids and index.bits == 8 * code_bytes > 0 and dim > 0


@st.composite
def additions(draw: st.DrawFn) -> tuple[Encoded, list[str]]:
    """Items to add, mostly wrong in one way: bit count, feature size, label shape, count."""
    count = draw(st.integers(0, 4))
    labels = draw(st.sampled_from(["single", "multi", "float"]))
    label_values = {
        "single": np.arange(count) % 3,
        "multi": np.ones((count, 3), np.uint8),
        "float": np.linspace(0, 1, count),
    }[labels]
    encoded = items(
        count,
        draw(st.sampled_from([BYTES, 0, 1, 3, 32])),
        draw(st.sampled_from([DIM, 0, 4, 6])),
        seed=1,
        labels=label_values,
    )
    names = draw(
        st.lists(
            st.sampled_from(["new0", "new1", "new2", "item0", "item7"]),
            min_size=count,
            max_size=count + 1,
        )
    )
    return encoded, names


@settings(FUZZ, max_examples=80)
@given(addition=additions())
def test_additions_that_do_not_fit_leave_the_index_as_it_was(addition) -> None:
    encoded, ids = addition
    index, reference = base_index(), base_index()
    try:
        index.add(encoded, ids)
    except HashsearchError as exc:
        assert_one_line(str(exc))
        assert unchanged(index, reference)
        return
    assert len(index) == COUNT + len(ids) and index.ids[COUNT:] == ids
    assert encoded.codes.shape[1] == BYTES and encoded.features.shape[1] == DIM
    assert np.asarray(encoded.labels).ndim == 1 and index.labels.dtype == reference.labels.dtype


IDS = st.text(max_size=6) | st.sampled_from([f"item{i}" for i in range(COUNT)])


@settings(FUZZ, max_examples=50)
@given(ids=st.lists(IDS, max_size=5))
def test_ids_that_repeat_are_refused_by_name(ids) -> None:
    index, reference = base_index(), base_index()
    try:
        index.add(items(len(ids), seed=2), ids)
    except HashsearchError as exc:
        repeated = next(i for n, i in enumerate(index.ids + ids) if i in (index.ids + ids)[:n])
        assert_one_line(str(exc), "occurs twice", repr(repeated))
        assert unchanged(index, reference)
        return
    assert len(set(reference.ids + ids)) == COUNT + len(ids)


@settings(FUZZ, max_examples=50)
@given(ids=st.lists(IDS, max_size=5))
def test_removing_unknown_ids_removes_nothing(ids) -> None:
    index, reference = base_index(), base_index()
    unknown = [item for item in ids if item not in reference.ids]
    try:
        removed = index.remove(ids)
    except HashsearchError as exc:
        assert unknown
        assert_one_line(str(exc), "nothing removed", repr(unknown[0]))
        assert unchanged(index, reference)
        return
    assert not unknown and removed == len(set(ids)) == COUNT - len(index)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, digits_run) -> Path:
    """The base index saved with a model, as `index-add` finds one."""
    folder = tmp_path_factory.mktemp("saved") / "index"
    base_index().save(folder, model_dir=digits_run.directory)
    return folder


# What a save calls, in order, by which a failure can be injected into it.
SAVE_STEPS = {
    "mkdir": (Path, "mkdir"),
    "write_bytes": (Path, "write_bytes"),
    "write_text": (Path, "write_text"),
    "np.save": (np, "save"),
    "copyfile": (shutil, "copyfile"),
    "rename": (Path, "rename"),
    "fsync": (store, "fsync"),
    "replace": (os, "replace"),
}


@settings(FUZZ, max_examples=40)
@given(step=st.sampled_from(sorted(SAVE_STEPS)), after=st.integers(0, 12))
def test_a_save_that_fails_at_any_step_leaves_the_index_as_it_was(
    step, after, saved, tmp_path, monkeypatch
) -> None:
    folder = fresh_copy(saved, tmp_path / "failing")
    before = snapshot(folder)
    owner, name = SAVE_STEPS[step]
    real, calls = getattr(owner, name), []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) > after:
            raise OSError(28, "No space left on device (injected)")
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(owner, name, failing)
        try:
            with HashIndex.editing(folder) as index:
                index.remove(["item3"])
        except OSError:
            assert snapshot(folder) == before
            return
    assert len(HashIndex.load(folder)) == COUNT - 1  # the failure came too late to happen


def test_an_exception_inside_an_edit_saves_nothing(saved, tmp_path) -> None:
    folder = fresh_copy(saved, tmp_path / "index")
    before = snapshot(folder)
    with pytest.raises(KeyboardInterrupt), HashIndex.editing(folder) as index:
        index.remove(["item1"])
        raise KeyboardInterrupt
    assert snapshot(folder) == before


def test_adding_files_needs_the_index_model_and_its_labels(saved, other_run, tmp_path) -> None:
    folder = fresh_copy(saved, tmp_path / "index")
    before = snapshot(folder, other_run.directory)
    image = tmp_path / "q.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(HashsearchError, match="label 3 is out of range"):
        api.add_to_index(folder, [image], [3])
    with pytest.raises(HashsearchError, match="q.png"):
        api.add_to_index(folder, [image], [1])
    with pytest.raises(HashsearchError, match="not the model"):
        api.search_images(folder, [image], run=other_run)
    bare = HashIndex.load(folder)
    bare.model_dir = None
    bare.save(tmp_path / "bare")
    with pytest.raises(HashsearchError, match="holds no model"):
        api.add_to_index(tmp_path / "bare", [image], [1])
    assert snapshot(folder, other_run.directory) == before
