"""Hashing methods: one module and one registry entry each; SAEH comes first."""

from hashsearch.methods import saeh as _saeh  # noqa: F401  (registers "saeh")
from hashsearch.methods.base import METHODS, HashingMethod, create_method, list_methods

__all__ = ["METHODS", "HashingMethod", "create_method", "list_methods"]
