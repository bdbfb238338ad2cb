"""hashsearch: image retrieval with deep supervised hashing and two-stage search."""

__version__ = "0.1.0"
