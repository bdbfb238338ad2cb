"""The bundled digits loader and loading data sets by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hashsearch.data import list_datasets, load_dataset, load_digits_dataset
from hashsearch.errors import HashsearchError


def test_digits_shape_labels_and_scale() -> None:
    digits = load_digits_dataset()
    assert digits.images.shape == (1797, 8, 8, 1) and digits.images.dtype == np.uint8
    assert digits.classes == tuple(str(digit) for digit in range(10))
    assert digits.labels.dtype == np.int64 and list(digits.labels[:10]) == list(range(10))
    assert np.bincount(digits.labels).min() >= 170
    assert set(np.unique(digits.images)) <= {value * 255 // 16 for value in range(17)}
    assert digits.images.max() == 255
    assert list(digits.ids[:2]) == ["digits/0", "digits/1"] and set(digits.splits) == {""}
    assert digits.name == "digits" and digits.image_shape == (1, 8, 8)


def test_load_dataset_by_name(tmp_path: Path) -> None:
    assert list_datasets() == ("digits", "cifar10", "folder", "list")
    assert load_dataset("digits", image_size=16).images.shape == (1797, 16, 16, 1)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(HashsearchError, match=r"unknown data set 'mnist'.*digits, cifar10, folder"):
        load_dataset("mnist")


def test_folder_needs_data_and_digits_takes_none(tmp_path: Path) -> None:
    with pytest.raises(HashsearchError, match=r"folder data set needs --data"):
        load_dataset("folder")
    with pytest.raises(HashsearchError, match=r"digits.*drop --data"):
        load_dataset("digits", data=tmp_path)
