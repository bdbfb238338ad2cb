"""The Milvus backend: codes and re-rank feature codes in a Milvus collection.

The collection has an INT64 primary key, the packed code as a BINARY_VECTOR
(HAMMING, BIN_FLAT: exact) searched in stage 1, and the item's re-rank feature
code (whatever its codec, `hashsearch.index.features`) as a second
BINARY_VECTOR fetched by key for stage 2. The index folder keeps the key of
each item in index order (`keys.npy`), the ids, labels, codec and model, so the
same `HashIndex` and search code run on it. The URI is anything `MilvusClient`
takes: a local file for the embedded milvus-lite, or `http://host:19530` for a
server or cluster.

Results equal the flat FAISS backend's, ties included: Milvus returns an
arbitrary subset of the items tied at the cut-off distance, so the tied group is
fetched whole by a range search and cut in key (= index) order. One Milvus
request returns at most 16,384 rows; a list that needs more is refused.

Keys only grow (`next_key` in the manifest) and a search looks only at keys
below the saved `next_key`, so rows an unfinished edit inserted are invisible
until that edit's version is saved, and a crashed edit is tidied by the next
writer (`reconcile`). Removals are deleted from Milvus before the new version
is saved: a crash in between leaves items listed that can no longer be found.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from hashsearch.errors import CandidateLimit, HashsearchError

T = TypeVar("T")
MAX_ROWS = 16_384  # Milvus's limit on the rows of one search or query answer
INSERT_BATCH = 10_000
KEY, CODE, FEATURES = "key", "code", "features"


@cache
def client(uri: str) -> Any:
    """One client per URI and process (milvus-lite starts one server per database file)."""
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise HashsearchError(
            "the milvus backend needs pymilvus; pip install 'hashsearch[milvus]'"
        ) from exc
    try:
        return MilvusClient(uri)
    except Exception as exc:  # pymilvus raises many kinds; all mean "cannot reach it"
        raise HashsearchError(f"cannot open Milvus at {uri!r}: {exc}") from exc


@contextmanager
def reported(uri: str) -> Iterator[None]:
    """A failing Milvus request (server down, collection dropped) as a one-line error."""
    try:
        yield
    except HashsearchError:
        raise
    except Exception as exc:
        if not type(exc).__module__.startswith("pymilvus"):
            raise
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise HashsearchError(f"Milvus at {uri} failed: {reason}") from None


def reporting(method: Callable[..., T]) -> Callable[..., T]:
    """`reported` around a method of a store (its URI is `self.uri`)."""

    @functools.wraps(method)
    def wrapper(self: MilvusStore, *args: Any, **kwargs: Any) -> T:
        with reported(self.uri):
            return method(self, *args, **kwargs)

    return wrapper


@dataclass
class MilvusStore:
    """Codes in a Milvus collection, searched by Hamming distance."""

    uri: str
    collection: str
    bits: int
    keys: np.ndarray  # (N,) int64, ascending, the key of each item in index order
    next_key: int
    kind: str = "milvus"

    @classmethod
    def build(
        cls, uri: str, collection: str, codes: np.ndarray, feature_codes: np.ndarray
    ) -> MilvusStore:
        """Create `collection` at `uri` (it must not exist) and insert the items."""
        from pymilvus import DataType, MilvusClient

        milvus = client(uri)
        if milvus.has_collection(collection):
            raise HashsearchError(
                f"Milvus collection {collection!r} already exists at {uri}; choose another name"
            )
        bits = codes.shape[1] * 8
        schema = MilvusClient.create_schema(
            auto_id=False, description=json.dumps({"hashsearch": True, "bits": bits})
        )
        schema.add_field(KEY, DataType.INT64, is_primary=True)
        schema.add_field(CODE, DataType.BINARY_VECTOR, dim=bits)
        schema.add_field(FEATURES, DataType.BINARY_VECTOR, dim=feature_codes.shape[1] * 8)
        params = milvus.prepare_index_params()
        for name in (CODE, FEATURES):  # every vector field needs an index to load
            params.add_index(name, index_type="BIN_FLAT", metric_type="HAMMING")
        # Strong: a search right after an insert or delete sees it (a server's default,
        # Bounded, may not, and results would then differ from the FAISS backends')
        milvus.create_collection(
            collection, schema=schema, index_params=params, consistency_level="Strong"
        )
        store = cls(uri, collection, bits, np.zeros(0, np.int64), 0)
        store.add(codes, feature_codes)
        return store

    @classmethod
    def open(
        cls, backend: dict[str, Any], bits: int, feature_bytes: int, keys: np.ndarray
    ) -> MilvusStore:
        """Reopen a saved index's collection, refusing one of other code or feature sizes."""
        uri, collection = backend["uri"], backend["collection"]
        with reported(uri):
            return cls._open(uri, collection, bits, feature_bytes, keys, int(backend["next_key"]))

    @classmethod
    def _open(
        cls,
        uri: str,
        collection: str,
        bits: int,
        feature_bytes: int,
        keys: np.ndarray,
        next_key: int,
    ) -> MilvusStore:
        milvus = client(uri)
        if not milvus.has_collection(collection):
            raise HashsearchError(
                f"Milvus collection {collection!r} is missing at {uri}; rebuild the index"
            )
        fields = {f["name"]: f for f in milvus.describe_collection(collection)["fields"]}
        dims = [fields.get(name, {}).get("params", {}).get("dim") for name in (CODE, FEATURES)]
        if dims != [bits, feature_bytes * 8]:
            raise HashsearchError(
                f"Milvus collection {collection!r} at {uri} does not hold {bits}-bit codes and "
                f"{feature_bytes}-byte features; rebuild the index"
            )
        milvus.load_collection(collection)
        return cls(uri, collection, bits, keys, next_key)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def milvus(self) -> Any:
        return client(self.uri)

    def _fetch(self, keys: np.ndarray, field: str) -> np.ndarray:
        """(len(keys), bytes) uint8 rows of a binary field, in the order of `keys`."""
        found: dict[int, bytes] = {}
        for start in range(0, len(keys), MAX_ROWS):
            batch = [int(k) for k in keys[start : start + MAX_ROWS]]
            with reported(self.uri):
                rows = self.milvus.get(self.collection, ids=batch, output_fields=[field])
            found.update((int(row[KEY]), row[field][0]) for row in rows)
        missing = [int(k) for k in keys if int(k) not in found]
        if missing:
            raise HashsearchError(
                f"Milvus collection {self.collection!r} lacks item key {missing[0]}; "
                "rebuild the index"
            )
        return np.array([np.frombuffer(found[int(k)], np.uint8) for k in keys], np.uint8)

    def codes(self) -> np.ndarray:
        return self._fetch(self.keys, CODE).reshape(len(self), self.bits // 8)

    def feature_codes(self, rows: np.ndarray | None = None) -> np.ndarray:
        return self._fetch(self.keys if rows is None else self.keys[rows], FEATURES)

    def _request(self, xq: np.ndarray, limit: int, params: dict[str, Any]) -> list[Any]:
        with reported(self.uri):
            return self._search(xq, limit, params)

    def _search(self, xq: np.ndarray, limit: int, params: dict[str, Any]) -> list[Any]:
        return self.milvus.search(
            self.collection,
            data=[row.tobytes() for row in np.ascontiguousarray(xq, np.uint8)],
            anns_field=CODE,
            limit=limit,
            filter=f"{KEY} < {self.next_key}",
            search_params={"metric_type": "HAMMING", "params": params},
        )

    def _ranked(
        self, hits: list[Any], what: str, complete: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Hits as (distances, positions), Hamming order, ties in index order.

        `complete`: the answer must hold every match, so a full answer may be cut short.
        """
        if complete and len(hits) >= MAX_ROWS:
            raise CandidateLimit(f"{what} holds over {MAX_ROWS:,} items; narrow the search")
        keys = np.array([h["id"] for h in hits], np.int64)
        distances = np.array([h["distance"] for h in hits]).round().astype(np.int32)
        positions = np.searchsorted(self.keys, keys).clip(max=max(len(self.keys) - 1, 0))
        listed = (self.keys[positions] == keys) if len(self.keys) else np.zeros(0, bool)
        order = np.lexsort((positions[listed], distances[listed]))
        return distances[listed][order], positions[listed][order]

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k > MAX_ROWS:
            raise HashsearchError(f"Milvus returns at most {MAX_ROWS:,} candidates, not {k:,}")
        distances = np.full((len(xq), k), -1, np.int32)
        items = np.full((len(xq), k), -1, np.int64)
        for q, hits in enumerate(self._request(xq, k, {})):
            d, i = self._ranked(list(hits), "a stage-1 list", complete=False)
            if len(d) == k:  # the cut may split a group of equal distances: fetch it whole
                cut = int(d[-1])
                ties = self._request(
                    xq[q : q + 1], MAX_ROWS, {"radius": cut + 1, "range_filter": cut}
                )
                tied_d, tied_i = self._ranked(list(ties[0]), f"distance {cut}")
                below = d < cut
                d = np.concatenate([d[below], tied_d])[:k]
                i = np.concatenate([i[below], tied_i])[:k]
            distances[q, : len(d)], items[q, : len(i)] = d, i
        return distances, items

    def range_search(
        self, xq: np.ndarray, radius: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Items at distance below `radius` (exclusive, as in FAISS)."""
        answers = (
            self._request(xq, MAX_ROWS, {"radius": radius, "range_filter": 0})
            if radius > 0
            else [[] for _ in xq]
        )
        found = [self._ranked(list(hits), f"radius {radius - 1}") for hits in answers]
        lims = np.cumsum([0] + [len(d) for d, _ in found])
        distances = np.concatenate([d for d, _ in found]) if found else np.zeros(0, np.int32)
        items = np.concatenate([i for _, i in found]) if found else np.zeros(0, np.int64)
        return lims, distances, items

    @reporting
    def add(self, codes: np.ndarray, feature_codes: np.ndarray) -> None:
        keys = np.arange(self.next_key, self.next_key + len(codes), dtype=np.int64)
        for start in range(0, len(codes), INSERT_BATCH):
            rows = slice(start, start + INSERT_BATCH)
            self.milvus.insert(
                self.collection,
                [
                    {KEY: int(k), CODE: c.tobytes(), FEATURES: f.tobytes()}
                    for k, c, f in zip(keys[rows], codes[rows], feature_codes[rows], strict=True)
                ],
            )
        self.milvus.load_collection(self.collection)
        self.keys = np.concatenate([self.keys, keys])
        self.next_key += len(codes)

    @reporting
    def keep(self, mask: np.ndarray) -> None:
        dropped = self.keys[~mask]
        for start in range(0, len(dropped), MAX_ROWS):
            self.milvus.delete(
                self.collection, ids=[int(k) for k in dropped[start : start + MAX_ROWS]]
            )
        self.keys = self.keys[mask]

    @reporting
    def reconcile(self) -> np.ndarray:
        """Drop rows a crashed edit inserted; the mask of listed items Milvus still holds."""
        self.milvus.delete(self.collection, filter=f"{KEY} >= {self.next_key}")
        present = {
            int(row[KEY])
            for start in range(0, len(self.keys), MAX_ROWS)
            for row in self.milvus.get(
                self.collection,
                ids=[int(k) for k in self.keys[start : start + MAX_ROWS]],
                output_fields=[KEY],
            )
        }
        return np.array([int(k) in present for k in self.keys], bool)

    def write(self, folder: Path) -> dict[str, Any]:
        np.save(folder / "keys.npy", self.keys)
        return {
            "kind": self.kind,
            "uri": self.uri,
            "collection": self.collection,
            "next_key": self.next_key,
            "files": ["keys.npy"],
        }
