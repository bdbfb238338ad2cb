"""The fields of an index manifest that loading and searching read, with their types.

The manifest is the one file of an index that no checksum covers: a damaged or
hand-edited one must be refused here, in one line, not fail deep inside FAISS, Milvus
or a search.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    field_validator,
    model_validator,
)

from hashsearch.index.backends import BACKEND_KINDS

DATA_FILES = ("features.codec", "labels.npy", "ids.json")
# what each backend reads back from its part of the manifest
BACKEND_KEYS = {"ivf": ("nprobe",), "milvus": ("uri", "collection", "next_key")}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class BackendFields(_Strict):
    kind: str
    nprobe: Annotated[int, Field(ge=1, lt=2**31)] | None = None  # a C int in FAISS
    uri: str | None = None
    collection: str | None = None
    next_key: NonNegativeInt | None = None

    @model_validator(mode="after")
    def _complete(self) -> BackendFields:
        if self.kind not in BACKEND_KINDS:
            raise ValueError(f"{self.kind!r} is none of {', '.join(BACKEND_KINDS)}")
        absent = [key for key in BACKEND_KEYS.get(self.kind, ()) if getattr(self, key) is None]
        if absent:
            raise ValueError(f"a {self.kind} backend needs {', '.join(absent)}")
        return self


class ManifestFields(_Strict):
    bits: PositiveInt
    count: NonNegativeInt
    feature_dim: PositiveInt
    feature_codec: str
    feature_bytes: PositiveInt
    backend: BackendFields
    files: dict[str, str]  # path in the version folder -> sha256
    classes: list[str] = []
    model_fingerprint: str | None = None

    @field_validator("files")
    @classmethod
    def _lists_the_data_files(cls, files: dict[str, str]) -> dict[str, str]:
        absent = [name for name in DATA_FILES if name not in files]
        if absent:
            raise ValueError(f"lists no {', '.join(absent)}")
        return files
