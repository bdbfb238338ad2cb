"""LSH, Spectral Hashing and ITQ: each against what its paper says it does."""

import numpy as np
import pytest

from hashsearch.encoding import unpack_codes
from hashsearch.errors import HashsearchError
from hashsearch.shallow import PCA, SHALLOW_METHODS
from hashsearch.shallow.itq import ITQ
from hashsearch.shallow.spectral import SpectralHashing


def correlated(n=2000, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)) @ rng.standard_normal((dim, dim)) + 5.0


@pytest.mark.parametrize("name", SHALLOW_METHODS.names())
def test_codes_are_deterministic_balanced_and_packed(name):
    x = correlated()
    a = SHALLOW_METHODS.get(name)(16, seed=3).fit(x).encode(x)
    b = SHALLOW_METHODS.get(name)(16, seed=3).fit(x).encode(x)
    assert a.shape == (2000, 2) and a.dtype == np.uint8 and np.array_equal(a, b)
    ones = unpack_codes(a, 16).mean(axis=0)  # share of +1 per bit, in [-1, 1]
    assert np.abs(ones).mean() < 0.5  # bits split the data, not all the same value


def test_nearby_vectors_get_nearby_codes():
    """Every method preserves neighbourhoods better than chance (the point of hashing)."""
    x = correlated()
    noisy = x + 0.05 * np.random.default_rng(1).standard_normal(x.shape) * x.std(axis=0)
    for name in SHALLOW_METHODS.names():
        hasher = SHALLOW_METHODS.get(name)(16).fit(x)
        close = unpack_codes(hasher.encode(x), 16) != unpack_codes(hasher.encode(noisy), 16)
        assert close.mean() < 0.25, name  # random codes would differ in half their bits


def test_itq_rotation_is_orthogonal_and_lowers_the_quantisation_loss():
    x = correlated()
    itq = ITQ(8).fit(x)
    assert np.allclose(itq.rotation @ itq.rotation.T, np.eye(8), atol=1e-8)
    v = itq.pca(x)
    loss = lambda r: np.square(np.sign(v @ r) - v @ r).sum()  # noqa: E731
    assert loss(itq.rotation) < loss(np.eye(8))  # ||B - VR||^2 below plain PCA's


def test_spectral_hashing_spends_more_bits_on_wider_directions():
    rng = np.random.default_rng(0)
    box = rng.uniform(0, 1, (4000, 2)) * np.array([8.0, 1.0])  # one direction 8x wider
    sh = SpectralHashing(4).fit(box)
    # eigenvalues (m / width)^2: the wide direction's modes 1-4 (1/64 .. 16/64) all come
    # before the narrow direction's first (1/1)
    assert sorted(sh.direction.tolist()) == [0, 0, 0, 0]
    width = np.ptp(sh.pca(box)[:, 0])
    assert np.allclose(sorted(sh.frequency), np.pi * np.arange(1, 5) / width, rtol=1e-3)


def test_pca_finds_the_direction_of_largest_variance():
    x = np.random.default_rng(0).standard_normal((1000, 3)) * np.array([1.0, 5.0, 0.1])
    pca = PCA(x, 1)
    assert abs(pca.components[1, 0]) > 0.99


def test_too_few_dimensions_is_a_clear_error():
    with pytest.raises(HashsearchError, match="ITQ needs .* dimension >= 32"):
        ITQ(32).fit(correlated(dim=16))
