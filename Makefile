# Two entry points (see README): `make demo` runs the main job, `make test` the suite.
# torch is installed first, pinned to the CPU build on this disk, so that resolving the
# package's `torch>=2.3` does not pull a multi-GB CUDA build.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: venv demo test lint clean

$(BIN)/hashsearch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/hashsearch

demo: venv
	$(BIN)/hashsearch demo

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
