"""Protocol sizes, disjointness and determinism on a synthetic CIFAR-10-shaped data set."""

import numpy as np
import pytest

from hashsearch.data.dataset import ImageDataset
from hashsearch.data.protocols import make_splits
from hashsearch.errors import HashsearchError


def cifar_shaped(test_per_class=1000, train_per_class=5000):
    labels = np.concatenate(
        [np.repeat(np.arange(10), train_per_class), np.repeat(np.arange(10), test_per_class)]
    )
    splits = np.array(["train"] * (10 * train_per_class) + ["test"] * (10 * test_per_class))
    n = len(labels)
    return ImageDataset(
        np.zeros((n, 1, 1, 1), np.uint8),
        labels,
        tuple("abcdefghij"),
        np.arange(n).astype(str),
        splits,
        "synthetic",
    )


@pytest.fixture(scope="module")
def dataset():
    return cifar_shaped()


def per_class(labels, rows):
    return np.bincount(labels[rows], minlength=10).tolist()


def test_cifar10_2(dataset):
    s = make_splits(dataset, "cifar10-2", seed=0)
    assert s.sizes() == {"train": 49000, "val": 1000, "query": 10000, "database": 50000}
    assert (dataset.splits[s.query] == "test").all() and (
        dataset.splits[s.database] == "train"
    ).all()
    assert per_class(dataset.labels, s.val) == [100] * 10
    assert np.array_equal(s.get("all"), np.arange(60000))  # every image, in data set order


def test_cifar10(dataset):
    s = make_splits(dataset, "cifar10", seed=0)
    assert s.sizes() == {"train": 4500, "val": 500, "query": 1000, "database": 54000}
    assert per_class(dataset.labels, s.query) == [100] * 10
    train_all = np.concatenate([s.train, s.val])
    assert per_class(dataset.labels, train_all) == [500] * 10
    everything = np.concatenate([s.query, train_all, s.database])
    assert len(np.unique(everything)) == 60000  # query, train, database partition the data


def test_cifar10_1(dataset):
    s = make_splits(dataset, "cifar10-1", seed=0)
    assert s.sizes() == {"train": 4500, "val": 500, "query": 1000, "database": 59000}
    assert not np.intersect1d(s.query, s.database).size
    assert np.isin(np.concatenate([s.train, s.val]), s.database).all()


def test_dsh_ranks_the_test_split_among_itself(dataset):
    s = make_splits(dataset, "dsh", seed=0)
    assert s.sizes() == {"train": 49000, "val": 1000, "query": 10000, "database": 10000}
    assert np.array_equal(s.query, s.database) and (dataset.splits[s.query] == "test").all()
    assert (dataset.splits[np.concatenate([s.train, s.val])] == "train").all()


@pytest.mark.parametrize(
    "protocol", ["cifar10-2", "cifar10", "cifar10-1", "dsh", "holdout", "unseen"]
)
def test_deterministic_from_seed_and_val_disjoint_from_train(dataset, protocol):
    a, b = make_splits(dataset, protocol, 7), make_splits(dataset, protocol, 7)
    c = make_splits(dataset, protocol, 8)
    for name in ("train", "val", "query", "database"):
        assert np.array_equal(a.get(name), b.get(name))
    assert not np.array_equal(a.val, c.val)
    assert not np.intersect1d(a.train, a.val).size
    assert not np.intersect1d(a.query, a.train).size


def test_val_size_override_and_too_small_data():
    small = cifar_shaped(test_per_class=2, train_per_class=10)
    assert make_splits(small, "cifar10-2", 0, val_per_class=2).sizes()["val"] == 20
    with pytest.raises(HashsearchError, match="needs 100"):
        make_splits(small, "cifar10-2", 0)
    with pytest.raises(HashsearchError, match="unknown protocol"):
        make_splits(small, "cifar100", 0)


def test_unseen_classes_never_train_and_are_all_that_is_searched(dataset):
    s = make_splits(dataset, "unseen", seed=0)
    labels = dataset.labels
    assert set(labels[s.train]) | set(labels[s.val]) == set(range(7))
    assert set(labels[s.query]) == set(labels[s.database]) == {7, 8, 9}
    assert s.sizes() == {"train": 34_300, "val": 700, "query": 3_000, "database": 15_000}
    assert (dataset.splits[s.query] == "test").all() and (
        dataset.splits[s.database] == "train"
    ).all()
    multi = ImageDataset(
        name="m",
        images=dataset.images[:4],
        labels=np.eye(3, dtype=np.int64)[[0, 1, 2, 0]],
        classes=("a", "b", "c"),
        ids=np.array(["0", "1", "2", "3"]),
        splits=np.array(["train"] * 4),
    )
    with pytest.raises(HashsearchError, match="single-label"):
        make_splits(multi, "unseen", seed=0)
