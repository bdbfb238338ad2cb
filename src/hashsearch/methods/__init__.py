"""Hashing methods: one module and one registry entry each; SAEH comes first."""

from hashsearch.methods import csq as _csq  # noqa: F401
from hashsearch.methods import dpsh as _dpsh  # noqa: F401
from hashsearch.methods import dsh as _dsh  # noqa: F401
from hashsearch.methods import greedyhash as _greedyhash  # noqa: F401
from hashsearch.methods import hashnet as _hashnet  # noqa: F401
from hashsearch.methods import saeh as _saeh  # noqa: F401  (registers "saeh" first)
from hashsearch.methods.base import METHODS, HashingMethod, create_method, list_methods

__all__ = ["METHODS", "HashingMethod", "create_method", "list_methods"]
