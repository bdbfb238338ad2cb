"""Bit packing and Hamming distances against brute force."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hashsearch.encoding import pack_codes, unpack_codes
from hashsearch.evaluation import hamming_distances


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 32), st.sampled_from([8, 16, 48, 64, 256]), st.integers(0, 2**31))
def test_pack_unpack_round_trip_and_bytes(n, bits, seed):
    h = np.random.default_rng(seed).standard_normal((n, bits))
    codes = pack_codes(h)
    assert codes.dtype == np.uint8 and codes.shape == (n, bits // 8)
    assert np.array_equal(unpack_codes(codes, bits), np.where(h >= 0, 1.0, -1.0))


def test_lengths_that_are_not_whole_bytes_are_zero_padded():
    h = np.random.default_rng(0).standard_normal((5, 12))
    codes = pack_codes(h)
    assert codes.shape == (5, 2) and not (codes[:, 1] & 0x0F).any()  # 4 padding bits, all 0
    assert np.array_equal(unpack_codes(codes, 12), np.where(h >= 0, 1.0, -1.0))
    brute = (np.sign(h + 1e-12)[:, None, :] != np.sign(h + 1e-12)[None, :, :]).sum(axis=2)
    fast = hamming_distances(unpack_codes(codes, 12), unpack_codes(codes, 12))
    assert np.array_equal(fast, brute)


def test_sign_of_zero_is_plus_one():
    assert unpack_codes(pack_codes(np.zeros((1, 8))), 8).tolist() == [[1.0] * 8]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 10), st.integers(1, 40), st.sampled_from([8, 24, 64, 256]), st.integers(0, 2**31)
)
def test_hamming_distances_match_popcount(nq, nb, bits, seed):
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 256, (nq, bits // 8), dtype=np.uint8)
    b = rng.integers(0, 256, (nb, bits // 8), dtype=np.uint8)
    brute = np.array(
        [[bin(int.from_bytes((x ^ y).tobytes(), "big")).count("1") for y in b] for x in q]
    )
    fast = hamming_distances(unpack_codes(q, bits), unpack_codes(b, bits))
    assert fast.dtype == np.uint16 and np.array_equal(fast, brute)
