"""The JSON the HTTP API answers with: typed, so the OpenAPI schema (/docs) documents it."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Result(BaseModel):
    """One hit, best first; `item`, `id`, `label`, `hamming` and `score` as the CLI prints them."""

    rank: int = Field(description="1 for the best hit")
    item: int = Field(description="position in the index")
    id: str
    label: str = Field(description="class name(s), comma-separated for multi-label items")
    hamming: int = Field(description="Hamming distance of the item's code to the query's")
    score: float | None = Field(description="re-rank score (cosine by default); null without")
    image_url: str


class Timings(BaseModel):
    """Milliseconds of the steps of the request, after the upload was received.

    Queries are answered in batches: `encode` is the forward pass of the query's whole
    batch, `stage1` and `stage2` the search of its group of queries with equal
    parameters; the wait for a batch shows in `total` alone.
    """

    decode: float
    encode: float
    stage1: float
    stage2: float
    total: float


class QueryInfo(BaseModel):
    """The query as the server understood it."""

    filename: str
    bytes: int
    top: int
    candidates: int
    radius: int | None
    rerank: str


class SearchResponse(BaseModel):
    results: list[Result]
    timings_ms: Timings
    query: QueryInfo


class Info(BaseModel):
    """What the index holds and which model encodes queries for it."""

    method: str
    bits: int
    count: int
    version: str = Field(description="the serving hashsearch's version")
    classes: list[str]
    dataset: str | None
    split: str | None
    image_shape: list[int] = Field(description="the model's input, [C, H, W]")
    rerankers: list[str]


class Health(BaseModel):
    status: str
    count: int
