"""Query corruptions: seeded, shape- and dtype-preserving, harsher with severity."""

import numpy as np
import pytest

from hashsearch.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from hashsearch.errors import HashsearchError


@pytest.fixture(scope="module")
def images():
    """Smooth images with an edge, like photos (pure noise would hide blur and JPEG)."""
    y, x = np.mgrid[0:32, 0:32]
    base = np.stack([x * 4, y * 4, (x + y) * 2], -1).astype(np.float32)
    base[8:24, 8:24] += 60
    shifts = np.arange(6)[:, None, None, None] * 10
    return (base[None] + shifts).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_every_corruption_is_seeded_and_grows_with_severity(images, name):
    changes = []
    for severity in SEVERITIES:
        out = corrupt(images, name, severity, seed=1)
        assert out.shape == images.shape and out.dtype == np.uint8
        assert np.array_equal(out, corrupt(images, name, severity, seed=1))
        changes.append(np.abs(out.astype(float) - images).mean())
    assert changes[0] > 0 and changes == sorted(changes), changes


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_grayscale_images_work(images, name):
    gray = images[..., :1]
    assert corrupt(gray, name, 2).shape == gray.shape


def test_bad_names_and_severities_are_refused(images):
    with pytest.raises(HashsearchError, match="severity"):
        corrupt(images, "jpeg", 4)
    with pytest.raises(HashsearchError, match="fog"):
        corrupt(images, "fog", 1)
