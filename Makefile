# One command each: `make demo` (the main job, embedded backend, no server needed),
# `make test` (the whole suite; needs redis-server on PATH), `make lint`, `make bench`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench wheel clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m registry demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(PY) -m ruff check registry tests benchmarks
	$(PY) -m ruff format --check registry tests benchmarks
	$(PY) -m mypy

bench: $(VENV)/.installed
	$(PY) -m benchmarks run --quick

wheel: $(VENV)/.installed
	$(PY) -m build --wheel --outdir dist

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
