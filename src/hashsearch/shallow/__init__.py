"""Classic unsupervised hashing baselines: LSH, Spectral Hashing and ITQ."""

from hashsearch.shallow import itq as _itq  # noqa: F401
from hashsearch.shallow import lsh as _lsh  # noqa: F401
from hashsearch.shallow import spectral as _spectral  # noqa: F401
from hashsearch.shallow.base import PCA, SHALLOW_METHODS, ShallowHasher

__all__ = ["PCA", "SHALLOW_METHODS", "ShallowHasher"]
