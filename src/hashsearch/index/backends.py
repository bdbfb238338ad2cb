"""Where an index keeps its codes and re-rank feature codes, and how stage 1 searches them.

A `CodeStore` holds, per item in index order, the packed binary code and the
re-rank feature code, and answers Hamming searches with FAISS's vocabulary:
`search(xq, k) -> (D, I)` and `range_search(xq, radius) -> (lims, D, I)` with
`I` positions in the index (-1 pads a short approximate list) and the radius
exclusive. `HashIndex` keeps ids, labels and the feature codec beside it and
knows nothing of the store's engine, so `hashsearch.search` is the same code
path for every backend:

- `flat`: FAISS IndexBinaryFlat, exact; ties come in index order.
- `hash`: FAISS IndexBinaryHash, approximate: looks only in buckets of the
  query's leading bits within `nflip` flips; exact for what it finds.
- `ivf`: FAISS IndexBinaryIVF, approximate: looks in `nprobe` of `nlist`
  Hamming k-means cells; the trained centroids are saved, the lists rebuilt at load.
- `milvus`: a Milvus collection (`hashsearch.index.milvus`).

A store writes what it needs into a version folder being saved and reopens from
it; before an edit, `reconcile` tidies what a crashed edit left in a remote
engine and says which listed items it still holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np

from hashsearch.errors import HashsearchError

LOCAL_KINDS = ("flat", "hash", "ivf")
BACKEND_KINDS = (*LOCAL_KINDS, "milvus")
HASH_BITS = 16  # IndexBinaryHash buckets by this many leading bits
HASH_NFLIP = 2  # and visits every bucket within this many flips of the query's
IVF_NPROBE = 8  # cells visited per query; 8 of 1,000 kept 99.5% of mAP@100 at 1M items


class CodeStore(Protocol):
    """Codes and feature codes of the items, in index order, plus stage-1 search."""

    kind: str
    bits: int

    def __len__(self) -> int: ...
    def codes(self) -> np.ndarray: ...
    def feature_codes(self, rows: np.ndarray | None = None) -> np.ndarray: ...
    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def range_search(
        self, xq: np.ndarray, radius: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
    def add(self, codes: np.ndarray, feature_codes: np.ndarray) -> None: ...
    def keep(self, mask: np.ndarray) -> None: ...
    def write(self, folder: Path) -> dict[str, Any]: ...
    def reconcile(self) -> np.ndarray: ...


def faiss_binary_index(kind: str, bits: int, count: int) -> Any:
    """An empty FAISS binary index of `kind` sized for about `count` items.

    A flat index takes codes padded with zero bytes to whole 64-bit words
    (`LocalStore` pads them): FAISS has a one-popcount Hamming kernel for 8-byte
    codes but a byte-wise one for 6-byte (48-bit) codes, 3.4x slower for a top-100
    search of 50,000 items (docs/performance.md). Zero padding changes no distance.
    """
    if kind == "flat":
        return faiss.IndexBinaryFlat(math.ceil(bits / 64) * 64)
    if kind == "hash":
        index = faiss.IndexBinaryHash(bits, min(bits, HASH_BITS))
        index.nflip = HASH_NFLIP
        return index
    if kind == "ivf":
        # about sqrt(N) cells, and at least 39 items per cell to train them on (FAISS)
        nlist = max(1, min(int(math.sqrt(count)), count // 39))
        index = faiss.index_binary_factory(bits, f"BIVF{nlist}")  # owns its quantizer
        index.nprobe = min(IVF_NPROBE, nlist)
        return index
    raise HashsearchError(f"unknown index backend {kind!r}; use one of {', '.join(BACKEND_KINDS)}")


@dataclass
class LocalStore:
    """Codes and feature codes in this process: a FAISS binary index over `code_array`."""

    kind: str
    index: Any
    code_array: np.ndarray
    feature_array: np.ndarray

    @classmethod
    def build(cls, kind: str, codes: np.ndarray, feature_codes: np.ndarray) -> LocalStore:
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        index = faiss_binary_index(kind, codes.shape[1] * 8, len(codes))
        if not index.is_trained and not len(codes):
            raise HashsearchError("an ivf index needs items to train its cells on; use flat")
        if not index.is_trained:
            sample = np.random.default_rng(0).permutation(len(codes))[: 256 * index.nlist]
            index.train(codes[np.sort(sample)])
        store = cls(kind, index, codes, feature_codes)
        index.add(store.padded(codes))
        return store

    @property
    def bits(self) -> int:
        return self.code_array.shape[1] * 8

    def padded(self, codes: np.ndarray) -> np.ndarray:
        """`codes` widened with zero bytes to the width the FAISS index takes."""
        extra = self.index.code_size - codes.shape[1]
        return np.pad(codes, ((0, 0), (0, extra))) if extra else np.ascontiguousarray(codes)

    def __len__(self) -> int:
        return len(self.code_array)

    def codes(self) -> np.ndarray:
        return self.code_array

    def feature_codes(self, rows: np.ndarray | None = None) -> np.ndarray:
        return self.feature_array if rows is None else np.asarray(self.feature_array[rows])

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(self.padded(xq), k)

    def range_search(
        self, xq: np.ndarray, radius: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.index.range_search(self.padded(xq), radius)

    def add(self, codes: np.ndarray, feature_codes: np.ndarray) -> None:
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        self.index.add(self.padded(codes))
        self.code_array = np.concatenate([self.code_array, codes])
        self.feature_array = np.concatenate([np.asarray(self.feature_array), feature_codes])

    def keep(self, mask: np.ndarray) -> None:
        """Keep the rows of `mask`, renumbered in order (FAISS lists are rebuilt)."""
        self.code_array = self.code_array[mask]
        self.feature_array = np.asarray(self.feature_array)[mask]
        self.index.reset()  # keeps an IVF's trained centroids
        self.index.add(self.padded(self.code_array))

    def write(self, folder: Path) -> dict[str, Any]:
        np.save(folder / "codes.npy", self.code_array)
        np.save(folder / "features.npy", np.ascontiguousarray(self.feature_array))
        files = ["codes.npy", "features.npy"]
        manifest: dict[str, Any] = {"kind": self.kind, "files": files}
        if self.kind == "ivf":
            trained = faiss.clone_binary_index(self.index)
            trained.reset()
            (folder / "stage1.faiss").write_bytes(faiss.serialize_index_binary(trained).tobytes())
            files.append("stage1.faiss")
            manifest.update(nlist=int(self.index.nlist), nprobe=int(self.index.nprobe))
        return manifest

    def reconcile(self) -> np.ndarray:
        """Every item: a local store is all in its version folder, never half-changed."""
        return np.ones(len(self), bool)

    @classmethod
    def open(
        cls, folder: Path, backend: dict[str, Any], bits: int, feature_bytes: int, mmap: bool
    ) -> LocalStore:
        """Reopen from a version folder; with `mmap` the feature codes are mapped, not read."""
        codes = np.load(folder / "codes.npy", allow_pickle=False)
        features = np.load(folder / "features.npy", mmap_mode="r" if mmap else None)
        if (
            codes.ndim != 2
            or codes.shape[1] * 8 != bits
            or features.shape != (len(codes), feature_bytes)
        ):
            raise HashsearchError(
                f"index arrays in {folder} do not match its manifest ({bits} bits, "
                f"{feature_bytes} feature bytes); rebuild the index"
            )
        kind = backend["kind"]
        if kind == "ivf":
            blob = np.frombuffer((folder / "stage1.faiss").read_bytes(), np.uint8)
            index = faiss.deserialize_index_binary(blob)
            index.nprobe = int(backend["nprobe"])
        else:
            index = faiss_binary_index(kind, bits, len(codes))
        store = cls(kind, index, codes, features)
        index.add(store.padded(codes))
        return store
