# The two commands of the README: `make study` and `make test`. Both create .venv when it is missing or
# older than pyproject.toml, then run. Rules call `genssl` from .venv/bin, which is put first on PATH here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
CORES ?= $(shell nproc)
SNAKEMAKE_ARGS ?=
PYTEST_ARGS ?=
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: study test test-fast lint venv clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

study: $(STAMP)
	snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

test: $(STAMP)
	pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks
	snakemake --lint

clean:
	rm -rf results logs .snakemake $(filter-out benchmarks/%.py,$(wildcard benchmarks/*/))
