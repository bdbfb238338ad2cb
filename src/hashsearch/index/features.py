"""Re-rank features stored compactly: float32, float16, int8 or product-quantised.

Re-rank features dominate an index's size: 256 float32 values are 1 KiB an item
against 6 bytes of 48-bit code. Each storage form is a FAISS standalone codec
(an `index_factory` string used through `sa_encode` / `sa_decode`): trained
once on the indexed features, it keeps uint8 codes and decodes float32 only
for the items being re-ranked. Features are L2-normalised before encoding:
every re-ranker scores by cosine (`hashsearch.rerank` normalises what it gets),
so a feature's length carries nothing, and quantisation error then weighs every
item alike.
"""

from __future__ import annotations

from enum import StrEnum

import faiss
import numpy as np

from hashsearch.errors import HashsearchError
from hashsearch.rerank import l2_normalized


class FeatureForm(StrEnum):
    """How an index stores re-rank features."""

    auto = "auto"  # pq from AUTO_PQ_MIN_ITEMS items on, float32 below
    float32 = "float32"
    float16 = "float16"
    int8 = "int8"
    pq = "pq"


FEATURE_FORMS: tuple[str, ...] = tuple(FeatureForm)

# `auto` product-quantises collections with enough items to train 256 centroids per
# sub-quantiser well (16 items a centroid) and keeps smaller ones exact.
AUTO_PQ_MIN_ITEMS = 4096
DEFAULT_PQ_BYTES = 32
PQ_CENTROIDS = 256  # 8-bit sub-quantiser codes


def pq_subquantizers(dim: int, max_bytes: int) -> int:
    """The most sub-quantisers (one byte each) that split `dim` evenly, at most `max_bytes`."""
    return max(m for m in range(1, min(dim, max_bytes) + 1) if dim % m == 0)


def factory_string(form: str, dim: int, count: int, pq_bytes: int = DEFAULT_PQ_BYTES) -> str:
    """The FAISS codec for a storage form (`auto` resolved by the item count)."""
    if pq_bytes < 1:
        raise HashsearchError(f"--pq-bytes must be at least 1, got {pq_bytes}")
    if form == "auto":
        form = "pq" if count >= AUTO_PQ_MIN_ITEMS else "float32"
    if form == "pq":
        if count < PQ_CENTROIDS:
            raise HashsearchError(
                f"--features pq needs at least {PQ_CENTROIDS} items to train on, the index "
                f"has {count}; use --features int8 or float16"
            )
        return f"PQ{pq_subquantizers(dim, pq_bytes)}"
    forms = {"float32": "Flat", "float16": "SQfp16", "int8": "SQ8"}
    if form not in forms:
        raise HashsearchError(
            f"unknown feature form {form!r}; use one of {', '.join(FEATURE_FORMS)}"
        )
    return forms[form]


class FeatureCodec:
    """A trained FAISS codec: float features <-> (N, code_size) uint8 codes."""

    def __init__(self, codec: faiss.Index) -> None:
        self.codec = codec

    @classmethod
    def fit(
        cls, features: np.ndarray, form: str = "auto", pq_bytes: int = DEFAULT_PQ_BYTES
    ) -> FeatureCodec:
        """Train the codec of `form` on (N, D) features."""
        count, dim = features.shape
        codec = faiss.index_factory(dim, factory_string(form, dim, count, pq_bytes))
        if isinstance(codec, faiss.IndexPQ):
            # fewer than FAISS's 39 items a centroid is allowed (and documented) here
            codec.pq.cp.min_points_per_centroid = 1
        if not codec.is_trained:
            if not count:
                raise HashsearchError(
                    f"--features {form} is trained on the items indexed, and there are none; "
                    "index a split that has items"
                )
            codec.train(np.ascontiguousarray(l2_normalized(features)))
        return cls(codec)

    @property
    def name(self) -> str:
        """The codec as FAISS names it, e.g. ``PQ32`` (kept in the manifest)."""
        if isinstance(self.codec, faiss.IndexPQ):
            return f"PQ{self.codec.pq.M}"
        if isinstance(self.codec, faiss.IndexScalarQuantizer):
            fp16 = self.codec.sq.qtype == faiss.ScalarQuantizer.QT_fp16
            return "SQfp16" if fp16 else "SQ8"
        return "Flat"

    @property
    def dim(self) -> int:
        return int(self.codec.d)

    @property
    def code_size(self) -> int:
        """Bytes of re-rank data per item."""
        return int(self.codec.sa_code_size())

    def encode(self, features: np.ndarray) -> np.ndarray:
        """(N, D) float -> (N, code_size) uint8."""
        if len(features) == 0:
            return np.zeros((0, self.code_size), np.uint8)
        return self.codec.sa_encode(np.ascontiguousarray(l2_normalized(features)))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(N, code_size) uint8 -> (N, D) float32, unit length up to quantisation error."""
        if len(codes) == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.codec.sa_decode(np.ascontiguousarray(codes, dtype=np.uint8))

    def serialize(self) -> np.ndarray:
        """The trained codec as bytes (uint8 array) for the index directory."""
        return faiss.serialize_index(self.codec)

    @classmethod
    def deserialize(cls, data: np.ndarray) -> FeatureCodec:
        return cls(faiss.deserialize_index(np.ascontiguousarray(data, dtype=np.uint8)))
