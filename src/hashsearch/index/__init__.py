"""Binary-code index: packed uint8 codes in FAISS plus re-rank features, saved as a directory."""

from hashsearch.index.store import Backend, HashIndex, read_manifest

__all__ = ["Backend", "HashIndex", "read_manifest"]
