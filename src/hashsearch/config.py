"""Typed configuration: one frozen pydantic model per component, strict about keys.

A run is fully described by a `RunConfig`; the trainer writes it, resolved, next
to the checkpoint so that `encode`, `index` and `evaluate` rebuild exactly the
model that was trained. An unknown key is an error (``extra="forbid"``), never
silently ignored: a typo in a YAML file must not change an experiment quietly.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from hashsearch.data.decode import MAX_IMAGE_SIDE
from hashsearch.errors import HashsearchError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Where the images come from and how they are split and normalised."""

    dataset: str = "digits"
    path: str | None = None
    image_size: Annotated[int, Field(ge=1, le=MAX_IMAGE_SIDE)] | None = None
    protocol: str = "holdout"
    # Validation items per class carved from the training split (a fraction if < 1);
    # None: the protocol's own size (see data/protocols.py).
    val_per_class: PositiveInt | PositiveFloat | None = None
    # "image": each image to zero mean, unit variance (design document, section 3.1);
    # "channel": per-channel mean/std of the training split (the usual CIFAR practice).
    normalization: Literal["image", "channel"] = "image"


class BackboneConfig(_Strict):
    """The CNN family shared by every deep method (one backbone family keeps the study fair)."""

    name: str = "resnet"
    widths: tuple[Annotated[int, Field(ge=2)], ...] = Field((32, 64, 128), min_length=1)
    blocks: tuple[NonNegativeInt, ...] = (1, 1, 1)
    # The whitened stem scales each patch direction by 1 / sqrt(eigenvalue + eps): a
    # small eps lets faint high-frequency directions, where pixel noise lives, be
    # amplified the most (docs/robustness.md).
    whiten_eps: PositiveFloat = 5e-4

    @field_validator("blocks")
    @classmethod
    def _blocks_match_widths(cls, blocks: tuple[int, ...], info: Any) -> tuple[int, ...]:
        widths = info.data.get("widths", ())
        if len(blocks) != len(widths):
            raise ValueError(f"blocks {blocks} must have one entry per width {widths}")
        return blocks


class MethodConfig(_Strict):
    """Which hashing method, its code length and its own parameters (checked by the method)."""

    name: str = "saeh"
    # Any length from 8 to 256; codes are stored in whole bytes, a length that is not a
    # multiple of 8 padded with zero bits, which every item shares, so Hamming
    # distances are those of the `bits` real bits (12 and 36 bits, as in older papers).
    bits: int = 48
    # BatchNorm (without affine scale) on the hash layer's output: every bit starts
    # zero-mean and unit-variance, so bits are balanced and tanh/sign gradients stay
    # alive whatever the feature scale (as in OrthoHash); docs/recipe.md measures it.
    hash_batchnorm: bool = False
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("bits")
    @classmethod
    def _bits_in_range(cls, bits: int) -> int:
        if not 8 <= bits <= 256:
            raise ValueError(f"bits must be from 8 to 256, got {bits}")
        return bits


class AugmentConfig(_Strict):
    """Augmentation done on uint8 tensors, batch-wise (no per-image Python loop)."""

    # random crop by translation of up to this many pixels, reflect-padded
    translate: NonNegativeInt = 2
    # Horizontal flips; off for data where mirror images differ (digits). True: each
    # image of a batch is flipped with probability 1/2. "alternating": airbench's
    # derandomised flip, each image flipped at random in the first epoch and the other
    # way round in each next one, so any two consecutive epochs show it both ways
    # (random draws repeat a view half the time and waste that epoch on it).
    flip: bool | Literal["alternating"] = True
    # Corruption, for codes that survive noisy, blurred, badly exposed or badly framed
    # queries (docs/robustness.md): this fraction of the images gets one of Gaussian
    # noise (sigma up to `noise` x 255), Gaussian blur (sigma up to `blur` pixels), a
    # brightness shift (up to `color` x 255), a contrast cut (down to 1 - 1.6 `color`),
    # a zoom (keeping down to 1 - `zoom` of each side) or a rotation (up to `rotate`
    # degrees).
    corrupt: Annotated[float, Field(ge=0, le=1)] = 0.0
    noise: NonNegativeFloat = 0.1
    blur: NonNegativeFloat = 1.0
    color: Annotated[float, Field(ge=0, le=0.5)] = 0.5
    zoom: Annotated[float, Field(ge=0, lt=1)] = 0.3
    rotate: Annotated[float, Field(ge=0, le=180)] = 15.0
    # Weight of the consistency term. 0: corrupted images replace their originals in
    # the batch and get the method's own loss. > 0: the batch keeps every clean image
    # (the method's loss sees only them) and a corrupted copy of a `corrupt` share is
    # added, trained only to give the code of its original (1 - cosine of h against
    # the original's h, held fixed). The copies share the forward pass, so BatchNorm
    # statistics mix clean and corrupted images. On the budget preset it did worse
    # than plain corruption on both counts (docs/robustness.md).
    consistency: NonNegativeFloat = 0.0
    # Corrupt only during this first fraction of the training steps; the rest trains on
    # clean images alone, so that the last, low-learning-rate steps fit clean images.
    corrupt_until: Annotated[float, Field(gt=0, le=1)] = 1.0
    # A decoder (SAEH's) reconstructs each image as it was before corruption, as a
    # denoising auto-encoder does, instead of the corrupted image it was given: the code
    # is then not asked to describe the noise, blur or zoom.
    denoise: bool = False
    # Progressive resizing: during the first `low_res_until` of the training steps the
    # encoder sees each augmented batch scaled down (antialiased) to `low_res` pixels on
    # its shorter side, which cuts a step's cost about by the pixel ratio; the rest, and all
    # validation and encoding, runs at full size. A decoder still reconstructs the
    # full-size image. None: full size throughout.
    low_res: Annotated[int, Field(ge=4)] | None = None
    low_res_until: Annotated[float, Field(gt=0, le=1)] = 0.5

    def input_size(self, progress: float) -> int | None:
        """The shorter side training inputs are scaled to at `progress`, None: full size."""
        return self.low_res if self.low_res is not None and progress < self.low_res_until else None

    @property
    def low_res_share(self) -> float:
        """The fraction of the training steps taken on `low_res` inputs."""
        return self.low_res_until if self.low_res is not None else 0.0

    def replacing(self, progress: float) -> bool:
        """Whether corrupted images replace their originals at `progress` (the fraction
        of training steps done)."""
        return self._corrupting(progress) and self.consistency == 0

    def copying(self, progress: float) -> bool:
        """Whether corrupted copies are added for the consistency term at `progress`."""
        return self._corrupting(progress) and self.consistency > 0

    def _corrupting(self, progress: float) -> bool:
        return self.corrupt > 0 and progress < self.corrupt_until

    @model_validator(mode="after")
    def _copies_to_be_consistent(self) -> AugmentConfig:
        if self.consistency > 0 and self.corrupt == 0:
            raise ValueError(
                "consistency > 0 needs corrupt > 0 (the share of images given a corrupted copy)"
            )
        return self


# Float precision of a forward pass; "auto" is decided on the machine that runs it.
Precision = Literal["fp32", "bf16", "auto"]


class TrainConfig(_Strict):
    """The training recipe (the CIFAR-10 preset's evidence is in `docs/results.md`)."""

    epochs: PositiveInt = 10
    batch_size: Annotated[int, Field(ge=2)] = 256  # BatchNorm needs two items a batch
    lr: PositiveFloat = 0.1  # peak of the one-cycle schedule (SGD, Nesterov)
    # "one-cycle": momentum falls from 0.95 to 0.85 while the learning rate rises and
    # climbs back as it falls (PyTorch's OneCycleLR default, which every recipe in
    # docs/recipe.md before round 3 used); `momentum` is then unused.
    # "constant": `momentum` throughout.
    momentum_schedule: Literal["one-cycle", "constant"] = "one-cycle"
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    weight_decay: NonNegativeFloat = 5e-4
    # "muon": the backbone's bias-free convolution filters take Muon's step (momentum
    # orthogonalised, filters held at a fixed norm; `training.optimizers`) at peak rate
    # `muon_lr` and fixed momentum `muon_momentum`, airbench94_muon's 0.6; every other
    # parameter SGD's as with "sgd".
    optimizer: Literal["sgd", "muon"] = "sgd"
    muon_lr: PositiveFloat = 0.1
    muon_momentum: Annotated[float, Field(ge=0, lt=1)] = 0.6
    # Precision of Muon's orthogonalisation (its Newton-Schulz iterations, a fixed cost
    # per step that grows with the filters, not the batch): "bf16" as Muon's authors
    # run it, half float32's time on a CPU with AMX; "auto": bf16 where the device
    # computes it natively (`device.autocast_precision`).
    muon_precision: Precision = "fp32"
    warmup_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    # Learning-rate multiplier for BatchNorm parameters, whose weight decay is divided by
    # it so that their decay per step stays that of the other weights (airbench's 64x
    # "bias scaler": BN shifts then keep pace with the scale-invariant convolutions).
    norm_lr_scale: PositiveFloat = 1.0
    # BatchNorm scales fixed at 1 (only the shifts train), as in airbench: with
    # scale-invariant convolutions a trainable scale only adds a direction to drift in.
    freeze_norm_scale: bool = False
    # Epochs the backbone's stem trains (the whitening bias of `whitened`, as airbench's
    # 3), then it is frozen: backpropagation then stops before the first full-resolution
    # convolution's input gradient (docs/recipe.md, round 5). None: the stem trains
    # throughout.
    stem_epochs: NonNegativeInt | None = None
    augment: AugmentConfig = AugmentConfig()
    eval_every: PositiveInt = 1  # validate every N epochs; the best validation mAP is kept
    val_retrieval_size: PositiveInt = 5000  # training items the validation queries search
    device: str = "cpu"
    threads: PositiveInt | None = None
    channels_last: bool = True
    # "bf16": bfloat16 autocast for training's forward pass (encoding has its own
    # `encode.precision`). Fast on CPUs with AVX-512 BF16 or AMX, slow elsewhere.
    # "auto": bf16 where the device computes it natively, else fp32
    # (`device.autocast_precision`); `api.train` saves the one it chose.
    precision: Precision = "fp32"
    max_steps: PositiveInt | None = None  # stop early (smoke tests); None trains all epochs
    # Wall-clock seconds training may take, from the probe to the last validation: a timed
    # probe on a copy of the model decides, before the first step, how many of `epochs`
    # fit (training/budget.py; metrics.json keeps the plan). A target, not a guarantee:
    # a machine that slows down mid-run overruns it. None: all `epochs`.
    budget_seconds: PositiveFloat | None = None
    # Decay of an exponential moving average of the weights and BatchNorm statistics,
    # updated every step; validation scores the average and the run keeps it (the
    # weight averaging of fast CIFAR-10 recipes: it smooths the last steps' noise).
    # The average spans about 1 / (1 - ema) steps, so keep that well under the run's
    # steps. 0: no average, the raw weights are scored and kept.
    ema: Annotated[float, Field(ge=0, lt=1)] = 0.0


PixelShift = Annotated[int, Field(ge=-4, le=4)]


class EncodeConfig(_Strict):
    """How a trained encoder turns images into codes (validation, index and queries alike,
    but for `query_shifts`, which only queries get)."""

    # Average h and the feature over an image and its mirror image (test-time
    # augmentation): two forward passes per image, for data whose mirror images
    # mean the same thing.
    flip_average: bool = False
    # Queries only (validation and query images, `search`, the server): average the
    # feature over the query (weight 1/2) and its copies moved by these (dy, dx) pixels
    # (sharing the other 1/2), edges reflected; [[1, 1], [-1, -1]] is airbench's
    # translation averaging. Each shift adds a query's passes, none is added to
    # encoding the database, whose codes stay single-view. A query that is also an
    # item then gets a code close to, not always equal to, its own.
    query_shifts: tuple[tuple[PixelShift, PixelShift], ...] = ()
    # bfloat16 autocast of the forward pass: about twice as fast on CPUs with AVX-512
    # BF16 or AMX, about a third as fast on CPUs without; a code bit whose h is within
    # bf16 rounding of 0 may flip. "auto": bf16 where the encoding device computes it
    # natively, decided where it encodes.
    precision: Precision = "fp32"


class RunConfig(_Strict):
    """Everything that defines one training run."""

    seed: int = 0
    data: DataConfig = DataConfig()
    backbone: BackboneConfig = BackboneConfig()
    method: MethodConfig = MethodConfig()
    train: TrainConfig = TrainConfig()
    encode: EncodeConfig = EncodeConfig()


def validated(model: type[BaseModel], values: Any, what: str, fix: str = "") -> Any:
    """Build `model` from `values`, turning pydantic's report into a one-line HashsearchError
    that ends with `fix`, what to do about it, when given."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{_where(err['loc']) or what}: {err['msg']}" for err in exc.errors())
        raise HashsearchError(f"invalid {what}: {problems}{f'; {fix}' if fix else ''}") from None


def _where(loc: tuple[int | str, ...]) -> str:
    """A dotted path to a bad value; a key that is no name is quoted (a newline stays \\n)."""
    return ".".join(str(p) if isinstance(p, int) or p.isidentifier() else repr(p) for p in loc)


def load_run_config(path: Path) -> RunConfig:
    """Read a YAML run configuration (e.g. a run directory's `config.yaml`)."""
    if not path.is_file():
        raise HashsearchError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as exc:  # ValueError: 2001-02-30
        raise HashsearchError(
            f"config file {path} is not valid YAML ({_yaml_problem(exc)}); fix or replace it"
        ) from None
    return validated(RunConfig, values, f"config {path}")


def _yaml_problem(exc: Exception) -> str:
    """One line about a YAML error (PyYAML's own message spans lines, with a caret)."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def dump_run_config(config: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def with_overrides(model: BaseModel, overrides: dict[str, Any]) -> Any:
    """A copy of a (nested) config with dotted-key overrides, validated again.

    >>> with_overrides(RunConfig(), {"method.bits": 32}).method.bits
    32
    """
    values = model.model_dump()
    for dotted, value in overrides.items():
        node = values
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise HashsearchError(f"unknown configuration key {dotted!r}: {key} has no fields")
        # a copy: a later dotted key must never write into the caller's (e.g. a preset's) dict
        node[leaf] = copy.deepcopy(value)
    return validated(type(model), values, "configuration")
