"""A run directory: the resolved config, the selected weights, metadata and metrics.

RUN/
  config.yaml         the RunConfig that produced it (resolved: every default written)
  run.json            format version, data set facts (classes, image shape), split sizes
  model.safetensors   the weights the validation split selected (no pickled code)
  metrics.json        per-epoch losses and validation metrics, training time
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PositiveInt, field_validator
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from hashsearch.config import (
    RunConfig,
    dump_run_config,
    load_run_config,
    validated,
    with_overrides,
)
from hashsearch.data.decode import MAX_PIXELS
from hashsearch.device import check_device
from hashsearch.errors import HashsearchError
from hashsearch.methods import HashingMethod, create_method

RUN_FORMAT_VERSION = 1
RUN_FILES = ("config.yaml", "run.json", "model.safetensors")  # what a model needs


@dataclass
class Run:
    """A trained model with everything needed to use it again."""

    directory: Path
    config: RunConfig
    meta: dict[str, Any]
    model: HashingMethod


def save_run(
    directory: Path,
    run_config: RunConfig,
    model: HashingMethod,
    meta: dict[str, Any],
    metrics: dict[str, Any],
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    dump_run_config(run_config, directory / "config.yaml")
    (directory / "run.json").write_text(
        json.dumps({"format_version": RUN_FORMAT_VERSION, **meta}, indent=2)
    )
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"))
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=2))


def load_run(directory: Path, device: str = "cpu", encode: Mapping[str, Any] | None = None) -> Run:
    """Rebuild the model from the config and load its weights (safetensors: no code runs).

    The returned run's config says `device`, so encoding sends batches where the model
    is, and the `encode` settings given (`EncodeConfig` field: value) over the saved
    ones: how the weights encode, which training does not change. Both hold for the
    returned run only: an index built from it copies the directory's own config.yaml.
    """
    meta = _read_meta(directory)
    overrides = {"train.device": device, **{f"encode.{k}": v for k, v in (encode or {}).items()}}
    config = with_overrides(load_run_config(directory / "config.yaml"), overrides)
    try:
        model = create_method(config, meta["num_classes"], tuple(meta["image_shape"]))
        model.load_state_dict(load_file(str(directory / "model.safetensors")))
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HashsearchError(
            f"weights in {directory} are damaged or do not match its config.yaml ({reason}); "
            "train the run again"
        ) from None
    return Run(directory, config, meta, model.to(check_device(device)).eval())


class _Meta(BaseModel):
    """The run.json fields that loading, indexing and searching read, with their types: a
    damaged or hand-edited file is refused in one line, not deep inside torch."""

    model_config = ConfigDict(extra="allow")
    num_classes: PositiveInt
    image_shape: tuple[Literal[1, 3], PositiveInt, PositiveInt]  # (C, H, W)
    classes: list[str]
    method: str
    dataset: str

    @field_validator("image_shape")
    @classmethod
    def _decodable(cls, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        if shape[1] * shape[2] > MAX_PIXELS:  # queries are resized to it
            raise ValueError(f"{shape[2]}x{shape[1]} is over {MAX_PIXELS:,} pixels")
        return shape


def _read_meta(directory: Path) -> dict[str, Any]:
    path = directory / "run.json"
    if not path.is_file():
        raise HashsearchError(
            f"{directory} is not a hashsearch run (no run.json); "
            "train one with `hashsearch train --out DIR`"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format_version") != RUN_FORMAT_VERSION:
        version = repr(meta.get("format_version")) if isinstance(meta, dict) else "unreadable"
        raise HashsearchError(
            f"run {directory} has format version {version}, this hashsearch reads "
            f"{RUN_FORMAT_VERSION}; train it again"
        )
    validated(_Meta, meta, f"run file {path}", "train the run again")
    return meta
