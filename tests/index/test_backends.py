"""Every backend against the exact FAISS flat one: same search answers, same lifecycle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hashsearch.encoding import Encoded
from hashsearch.errors import HashsearchError
from hashsearch.index import Backend, HashIndex
from hashsearch.index.backends import HASH_NFLIP
from hashsearch.index.milvus import MAX_ROWS
from hashsearch.search import stage1, two_stage_search

N = 600


@pytest.fixture(scope="module")
def items():
    """16-bit codes over 600 items: many items tie at every distance."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (N, 2), dtype=np.uint8)
    features = rng.normal(size=(N, 8)).astype(np.float32)
    return Encoded(codes, features, rng.integers(0, 5, N)), [f"item-{i}" for i in range(N)]


def part(encoded: Encoded, rows: slice) -> Encoded:
    return Encoded(encoded.codes[rows], encoded.features[rows], encoded.labels[rows])


def build(items, backend: Backend) -> HashIndex:
    encoded, ids = items
    return HashIndex.build(encoded, ids, {"method": "saeh"}, features="float32", backend=backend)


@pytest.fixture(scope="module")
def flat(items):
    return build(items, Backend("flat"))


@pytest.fixture
def milvus(items, tmp_path):
    return build(items, Backend("milvus", str(tmp_path / "milvus.db"), "items"))


def same_lists(a, b) -> bool:
    return all(
        np.array_equal(da, db) and np.array_equal(ia, ib)
        for (da, ia), (db, ib) in zip(a, b, strict=True)
    )


def test_milvus_answers_equal_flat_faiss_ties_included(flat, milvus, items):
    queries = items[0].codes[:25] ^ np.uint8(1)  # near, not equal to, stored codes
    for k in (1, 7, 50, N - 1, N):
        assert same_lists(stage1(flat, queries, k, None), stage1(milvus, queries, k, None)), k
    for radius in (0, 2, 5):
        assert same_lists(stage1(flat, queries, 10, radius), stage1(milvus, queries, 10, radius))
    features = items[0].features[:25]
    for a, b in zip(
        two_stage_search(flat, queries, features, top=20, candidates=60),
        two_stage_search(milvus, queries, features, top=20, candidates=60),
        strict=True,
    ):
        assert np.array_equal(a.items, b.items) and np.allclose(a.scores, b.scores)
    assert np.array_equal(milvus.codes(), flat.codes())


def test_milvus_lifecycle_matches_flat_and_survives_reopening(items, tmp_path):
    encoded, ids = items
    backends = {"flat": Backend("flat"), "milvus": Backend("milvus", str(tmp_path / "m.db"))}
    found = {}
    for name, backend in backends.items():
        index = build((part(encoded, slice(500)), ids[:500]), backend)
        index.remove(ids[10:40])
        index.add(part(encoded, slice(500, None)), ids[500:])
        index.save(tmp_path / name)
        again = HashIndex.load(tmp_path / name)
        assert len(again) == 570 and again.ids == index.ids
        found[name] = stage1(again, encoded.codes[:30], 25, None)
    assert same_lists(found["flat"], found["milvus"])


def test_milvus_edit_tidies_rows_a_crashed_edit_left(items, tmp_path):
    encoded, ids = items
    build((part(encoded, slice(100)), ids[:100]), Backend("milvus", str(tmp_path / "m.db"))).save(
        tmp_path / "ix"
    )
    crashed = HashIndex.load(tmp_path / "ix")  # an edit that dies before its save
    crashed.add(part(encoded, slice(100, 120)), ids[100:120])
    crashed.store.keep(np.arange(120) != 3)  # item 3 deleted in Milvus, still listed
    reader = HashIndex.load(tmp_path / "ix")
    hits = stage1(reader, encoded.codes[100:120], 1, None)
    assert all(i[0] < 100 for _, i in hits)  # the unsaved rows stay invisible
    with HashIndex.editing(tmp_path / "ix") as index:
        assert len(index) == 99 and "item-3" not in index.ids
    assert len(HashIndex.load(tmp_path / "ix").codes()) == 99


def test_milvus_refuses_what_it_cannot_answer(milvus, tmp_path, items):
    with pytest.raises(HashsearchError, match="at most 16,384 candidates"):
        milvus.store.search(items[0].codes[:1], MAX_ROWS + 1)
    with pytest.raises(HashsearchError, match="already exists"):
        build(items, Backend("milvus", milvus.store.uri, "items"))
    with pytest.raises(HashsearchError, match="needs a URI"):
        build(items, Backend("milvus"))
    milvus.save(tmp_path / "ix")
    milvus.store.milvus.drop_collection("items")
    with pytest.raises(HashsearchError, match="collection 'items' is missing"):
        HashIndex.load(tmp_path / "ix")


@pytest.mark.parametrize("kind", ["hash", "ivf"])
def test_approximate_backends_find_true_distances_and_round_trip(flat, items, kind, tmp_path):
    index = build(items, Backend(kind))
    queries = items[0].codes[:40]
    exact = stage1(flat, queries, 10, None)
    approximate = stage1(index, queries, 10, None)
    for q, ((d_exact, _), (d, i)) in enumerate(zip(exact, approximate, strict=True)):
        true = np.unpackbits(queries[q] ^ items[0].codes[i], axis=1).sum(1)
        assert np.array_equal(d, true) and (d >= d_exact[: len(d)]).all()
        if kind == "hash":  # every bucket within HASH_NFLIP flips, nothing further
            assert np.array_equal(d, d_exact[d_exact <= HASH_NFLIP][:10])
    if kind == "ivf":
        found_exact_kth = [
            d[-1] == de[-1] for (de, _), (d, _) in zip(exact, approximate, strict=True)
        ]
        assert np.mean(found_exact_kth) > 0.5
    version = index.save(tmp_path / kind)
    assert json.loads((version / "manifest.json").read_text())["backend"]["kind"] == kind
    again = HashIndex.load(tmp_path / kind)
    assert same_lists(stage1(again, queries, 10, None), approximate)
    again.remove(["item-0", "item-5"])
    assert len(again) == N - 2 and "item-0" not in again.ids
    d, i = stage1(again, items[0].codes[7:8], 1, None)[0]  # lists rebuilt, renumbered
    assert d[0] == 0 and np.array_equal(again.codes()[i[0]], items[0].codes[7])


def test_ivf_probing_every_cell_is_exact(flat, items):
    index = build(items, Backend("ivf"))
    index.store.index.nprobe = index.store.index.nlist
    queries = items[0].codes[:30]
    exact, probed = stage1(flat, queries, 15, None), stage1(index, queries, 15, None)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(exact, probed, strict=True))


def test_unknown_backend_is_refused(items):
    with pytest.raises(HashsearchError, match="unknown index backend 'annoy'"):
        build(items, Backend("annoy"))


def test_an_empty_ivf_index_is_refused_in_one_line():
    empty = Encoded(np.zeros((0, 2), np.uint8), np.zeros((0, 8), np.float32), np.zeros(0, int))
    with pytest.raises(HashsearchError, match="ivf index needs items"):
        HashIndex.build(empty, [], {}, features="float32", backend=Backend("ivf"))


@pytest.mark.parametrize("code_bytes", [2, 6, 8, 12])
def test_flat_store_answers_like_brute_force_whatever_its_padding(code_bytes):
    """The flat store hands FAISS codes padded to whole 64-bit words; distances, order
    (ties in item order) and radius answers are those of the unpadded codes."""
    from hashsearch.index.backends import LocalStore

    rng = np.random.default_rng(code_bytes)
    codes = rng.integers(0, 256, (500, code_bytes), dtype=np.uint8)
    queries = rng.integers(0, 256, (7, code_bytes), dtype=np.uint8)
    store = LocalStore.build("flat", codes, np.zeros((500, 4), np.float32))
    assert store.bits == code_bytes * 8 and store.index.code_size % 8 == 0
    hamming = np.unpackbits(queries[:, None, :] ^ codes[None, :, :], axis=2).sum(axis=2)
    distances, rows = store.search(queries, 50)
    expected = np.argsort(hamming, axis=1, kind="stable")[:, :50]
    assert np.array_equal(rows, expected)
    assert np.array_equal(distances, np.take_along_axis(hamming, expected, axis=1))
    radius = int(np.median(hamming))
    lims, found_distances, found = store.range_search(queries, radius)
    for q in range(len(queries)):
        within = np.flatnonzero(hamming[q] < radius)
        assert sorted(found[lims[q] : lims[q + 1]].tolist()) == within.tolist()
    store.add(codes[:3], np.zeros((3, 4), np.float32))  # added items are padded alike
    distances, rows = store.search(codes[:3], 3)
    for q in range(3):  # the original and its added copy at distance 0 (16 bits may collide)
        assert {q, 500 + q} <= set(rows[q][distances[q] == 0].tolist())
