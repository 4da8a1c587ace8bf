# The two commands of the README: `make study` and `make test`. Both create .venv when it is missing or
# older than pyproject.toml, then run. Rules call `genssl` from .venv/bin, which is put first on PATH here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
CORES ?= $(shell nproc)
CONFIG ?= config/config.yaml
SNAKEMAKE_ARGS ?=
PYTEST_ARGS ?=
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: study report test test-fast test-slurm lint venv push pull clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

study: $(STAMP)
	snakemake --cores $(CORES) --configfile $(CONFIG) $(SNAKEMAKE_ARGS)

# Snakemake's HTML report of a finished study: every figure with its caption.
report: $(STAMP)
	snakemake --configfile $(CONFIG) --report results/report.html

test: $(STAMP)
	pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	pytest -m "not slow" $(PYTEST_ARGS)

# The tiny study on a real single-node SLURM cluster on localhost (installs Debian's slurm-wlm and munge as root).
test-slurm: $(STAMP)
	profiles/slurm/localhost/cluster.sh start
	pytest -m slurm $(PYTEST_ARGS)

lint: $(STAMP)
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks
	snakemake --lint

# DVC (README: DVC): record the tracked artifacts of a finished study in dvc.lock and upload them to the remote of
# .dvc/config; then commit dvc.lock so that other clones can pull them.
push: $(STAMP)
	dvc commit --force --quiet
	dvc push
	@echo "pushed; now commit dvc.lock (git add dvc.lock && git commit) so that clones can pull these artifacts"

# Download the tracked artifacts of dvc.lock, then touch them in DAG order so that Snakemake takes them as up to date
# (pulled files have new times and no Snakemake metadata) and runs only what is downstream of them.
pull: $(STAMP)
	dvc pull
	snakemake --cores 1 --configfile $(CONFIG) --touch --forceall $$(genssl dvc-stages --config $(CONFIG) --targets)

clean:
	rm -rf results logs .snakemake
