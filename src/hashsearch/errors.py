"""The one exception type that the CLI turns into a one-line message.

Public boundaries (file loading, configuration, `create_*` factories, the CLI)
raise `HashsearchError` with a message that names the bad value and says what to
do; internal invariants use `assert`. Keeping a single type lets the CLI print
`error: <message>` and exit 2 without a traceback, and lets callers of the Python
API catch one thing.
"""

from __future__ import annotations


class HashsearchError(Exception):
    """A user-facing error: bad input, a missing file, a damaged index, a bad option."""


class TrainingDiverged(HashsearchError):
    """A loss term became NaN or infinite: the weights are lost, so training stops."""


class CandidateLimit(HashsearchError):
    """A search that would return more candidates than its caller allows (a wide radius):
    the request's fault, not the index's."""
