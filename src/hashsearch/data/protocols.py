"""Evaluation protocols: which items train, validate, query and form the database.

Every split is drawn from a seeded generator, so the same seed gives the same
split on every machine. The validation split is always carved out of the
training items and is the only thing model selection may look at; the query set
is never used to pick an epoch or a hyper-parameter.

| protocol    | query                    | database                 | train (val carved from it)   |
|-------------|--------------------------|--------------------------|------------------------------|
| `cifar10-2` | the official test split  | the official train split | = database, minus val 100/cls|
| `cifar10`   | 100 per class            | the rest minus train     | 500 per class, val 50/cls    |
| `cifar10-1` | 100 per class            | all but the query        | 500/cls from database, val 50|
| `dsh`       | the official test split  | = query (DSH's protocol) | the official train split     |
| `holdout`   | 10% per class            | the rest                 | = database, val 10%/cls      |
| `unseen`    | test items of the held-  | train items of the held- | train items of the other     |
|             | out classes              | out classes              | classes, val 100/cls         |

`unseen` (Sablayrolles et al., "How should we evaluate supervised hashing?",
ICASSP 2017) holds out the last 30% of the classes (CIFAR-10: horse, ship,
truck): training and model selection never see them, and retrieval among them
shows whether codes carry visual similarity or only the trained class identities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hashsearch.data.dataset import ImageDataset
from hashsearch.errors import HashsearchError
from hashsearch.registry import Registry


@dataclass(frozen=True)
class Splits:
    """Index arrays into one ImageDataset; train and val are disjoint."""

    train: np.ndarray
    val: np.ndarray
    query: np.ndarray
    database: np.ndarray

    def get(self, name: str) -> np.ndarray:
        """One split's indices; ``"all"`` is every item any split uses, in data set order."""
        if name == "all":
            return np.unique(np.concatenate([self.train, self.val, self.query, self.database]))
        if name not in ("train", "val", "query", "database"):
            raise HashsearchError(f"unknown split {name!r}; use train, val, query, database or all")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        return {k: len(self.get(k)) for k in ("train", "val", "query", "database")}


Protocol = Callable[[ImageDataset, np.random.Generator, "int | float | None"], Splits]
PROTOCOLS: Registry[Protocol] = Registry("protocol")


def class_of(labels: np.ndarray) -> np.ndarray:
    """One class per item for stratified sampling (the first label of multi-hot rows)."""
    return labels if labels.ndim == 1 else labels.argmax(axis=1)


def take_per_class(
    classes: np.ndarray, pool: np.ndarray, count: int | float, rng: np.random.Generator
) -> np.ndarray:
    """Draw `count` items (an int, or a fraction of each class) per class from `pool`.

    Returns sorted indices, so split order never depends on the draw order; an empty
    `pool` gives an empty draw (`make_splits` refuses the empty split that results).
    """
    chosen = [pool[:0]]
    for c in np.unique(classes[pool]):
        members = pool[classes[pool] == c]
        n = count if isinstance(count, int) else max(1, round(count * len(members)))
        if n > len(members):
            raise HashsearchError(
                f"class {c} has {len(members)} items, the protocol needs {n}; "
                "use a protocol that fits this data set (e.g. holdout)"
            )
        chosen.append(rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(chosen))


QUERY_SAMPLE_SEED = 0  # a query subset is the same draw for every run, seed and method


def query_sample(labels: np.ndarray, rows: np.ndarray, per_class: int) -> np.ndarray:
    """`per_class` query items of each class from `rows`, the same draw every time
    (a study's cells and `evaluate --corruptions` score the same queries)."""
    rng = np.random.default_rng(QUERY_SAMPLE_SEED)
    return take_per_class(class_of(labels), rows, per_class, rng)


def without(pool: np.ndarray, removed: np.ndarray) -> np.ndarray:
    return np.setdiff1d(pool, removed, assume_unique=True)


def carve_val(
    classes: np.ndarray,
    train: np.ndarray,
    count: int | float,
    rng: np.random.Generator,
    query: np.ndarray,
    database: np.ndarray,
) -> Splits:
    """Hold `count` items per class of `train` out as the validation split."""
    val = take_per_class(classes, train, count, rng)
    return Splits(train=without(train, val), val=val, query=query, database=database)


def official_split(dataset: ImageDataset, name: str) -> np.ndarray:
    found = np.flatnonzero(dataset.splits == name)
    if not len(found):
        raise HashsearchError(
            f"data set {dataset.name!r} has no {name!r} split; this protocol needs "
            "<split>/<class>/<file> data (train and test), or use the holdout protocol"
        )
    return found


@PROTOCOLS.register("cifar10-2")
def cifar10_2(dataset: ImageDataset, rng: np.random.Generator, val: int | float | None) -> Splits:
    """Query: the official test split; train = database: the official train split."""
    train = official_split(dataset, "train")
    return carve_val(
        class_of(dataset.labels),
        train,
        100 if val is None else val,
        rng,
        query=official_split(dataset, "test"),
        database=train,
    )


@PROTOCOLS.register("cifar10")
def cifar10(dataset: ImageDataset, rng: np.random.Generator, val: int | float | None) -> Splits:
    """Query 100/class, train 500/class, database the rest (disjoint from train)."""
    classes, everything = class_of(dataset.labels), np.arange(len(dataset))
    query = take_per_class(classes, everything, 100, rng)
    train = take_per_class(classes, without(everything, query), 500, rng)
    database = without(without(everything, query), train)
    return carve_val(
        classes, train, 50 if val is None else val, rng, query=query, database=database
    )


@PROTOCOLS.register("cifar10-1")
def cifar10_1(dataset: ImageDataset, rng: np.random.Generator, val: int | float | None) -> Splits:
    """Query 100/class, database all the rest, train 500/class drawn from the database."""
    classes, everything = class_of(dataset.labels), np.arange(len(dataset))
    query = take_per_class(classes, everything, 100, rng)
    database = without(everything, query)
    train = take_per_class(classes, database, 500, rng)
    return carve_val(
        classes, train, 50 if val is None else val, rng, query=query, database=database
    )


@PROTOCOLS.register("dsh")
def dsh(dataset: ImageDataset, rng: np.random.Generator, val: int | float | None) -> Splits:
    """The DSH paper's CIFAR-10 protocol: train on the official train split; the official
    test split is both query and database (test codes ranked among themselves)."""
    test = official_split(dataset, "test")
    return carve_val(
        class_of(dataset.labels),
        official_split(dataset, "train"),
        100 if val is None else val,
        rng,
        query=test,
        database=test,
    )


@PROTOCOLS.register("holdout")
def holdout(dataset: ImageDataset, rng: np.random.Generator, val: int | float | None) -> Splits:
    """Query 10% per class; train = database = the rest; val 10% of train per class."""
    classes, everything = class_of(dataset.labels), np.arange(len(dataset))
    query = take_per_class(classes, everything, 0.1, rng)
    database = without(everything, query)
    return carve_val(
        classes, database, 0.1 if val is None else val, rng, query=query, database=database
    )


UNSEEN_FRACTION = 0.3


def unseen_classes(num_classes: int) -> np.ndarray:
    """The classes the `unseen` protocol holds out: the last 30% (at least one)."""
    held_out = max(1, round(UNSEEN_FRACTION * num_classes))
    return np.arange(num_classes - held_out, num_classes)


@PROTOCOLS.register("unseen")
def unseen(dataset: ImageDataset, rng: np.random.Generator, val: int | float | None) -> Splits:
    """Train on the seen classes; query and database: the held-out classes only."""
    if dataset.labels.ndim != 1:
        raise HashsearchError("the unseen protocol needs single-label data")
    held_out = np.isin(dataset.labels, unseen_classes(dataset.num_classes))
    train, test = official_split(dataset, "train"), official_split(dataset, "test")
    return carve_val(
        dataset.labels,
        train[~held_out[train]],
        100 if val is None else val,
        rng,
        query=test[held_out[test]],
        database=train[held_out[train]],
    )


def make_splits(
    dataset: ImageDataset, protocol: str, seed: int, val_per_class: int | float | None = None
) -> Splits:
    """The protocol's splits of `dataset`, deterministic from `seed`.

    `val_per_class` overrides the protocol's validation size (an int per class, or a
    fraction of each class), e.g. for a small slice of a data set.
    """
    splits = PROTOCOLS.get(protocol)(dataset, np.random.default_rng(seed), val_per_class)
    sizes = splits.sizes()
    if min(sizes.values()) == 0 or sizes["train"] < 2:  # a training batch needs 2 items
        shown = ", ".join(f"{name} {size}" for name, size in sizes.items())
        raise HashsearchError(
            f"the {protocol} protocol splits {dataset.name!r} ({len(dataset)} items, "
            f"{dataset.num_classes} classes) into {shown}; every split needs items and train "
            "at least 2: add images to the smallest classes or use another protocol"
        )
    return splits
