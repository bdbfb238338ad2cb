"""The HTTP face of hashsearch: a FastAPI app over one index, and its web page.

`create_app(index_dir)` builds the app (tests, embedding); `serve` runs it under
uvicorn, as `hashsearch serve` does.
"""

from hashsearch.server.app import create_app, serve

__all__ = ["create_app", "serve"]
