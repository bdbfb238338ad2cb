"""A tiny name -> factory registry, shared by backbones, methods and re-rankers.

Modelled on timm's `register_model` / `create_model` / `list_models`: adding a
component is one decorated definition; an unknown name fails loudly with the
list of known ones, so the CLI can offer `list_*()` as its choices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from hashsearch.errors import HashsearchError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to factories of one kind of component (e.g. "method")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            assert name not in self._entries, f"{self.kind} {name!r} registered twice"
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            known = ", ".join(self.names())
            raise HashsearchError(f"unknown {self.kind} {name!r}; known: {known}")
        return self._entries[name]

    def names(self) -> list[str]:
        """Registered names, in registration order (the first is the default)."""
        return list(self._entries)
