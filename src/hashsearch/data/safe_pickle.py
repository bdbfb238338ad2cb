"""Unpickling numpy-array pickles (the CIFAR-10 python release) without running code.

A pickle may name any importable callable and call it while loading, so an archive
from anywhere could run code with a plain `pickle.load`. `load_array_pickle` resolves
only the globals that numpy array pickles need and refuses every other one:

- ``numpy.core.multiarray._reconstruct`` (as written by numpy 1.x; the CIFAR-10 batches
  were pickled by Python 2 with numpy 1.x) or ``numpy._core.multiarray._reconstruct``
  (numpy 2), ``numpy.ndarray`` and ``numpy.dtype``: they rebuild an array;
- nothing from builtins: dicts, lists, ints and strings have pickle opcodes of their own.
"""

from __future__ import annotations

import pickle
from typing import IO, Any

import numpy as np

from hashsearch.errors import HashsearchError

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler whose `find_class` knows only `_ALLOWED_GLOBALS`."""

    def __init__(self, file: IO[bytes], name: str) -> None:
        super().__init__(file, encoding="bytes")
        self._name = name

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise HashsearchError(
                f"{self._name} refers to {module}.{name}, which a data file of numpy "
                f"arrays never needs; refusing to unpickle it (it could run code); "
                f"replace it with an official copy"
            ) from None


def load_array_pickle(file: IO[bytes], name: str) -> Any:
    """Unpickle ``file`` (named ``name`` in messages) allowing only numpy array globals.

    Python 2 ``str`` objects come back as ``bytes`` (``encoding="bytes"``), so dict keys
    of the CIFAR-10 batches are ``b"data"``, ``b"labels"``.
    """
    try:
        return _ArrayUnpickler(file, name).load()
    except HashsearchError:
        raise
    except Exception as exc:  # a damaged pickle fails in many ways, all meaning the same
        raise HashsearchError(
            f"cannot unpickle {name} ({type(exc).__name__}: {exc}); "
            f"replace it with an official copy"
        ) from exc
