# The two commands of the README: `make study [TARGETS=...]` and `make test`. Both create .venv when it is missing or
# older than pyproject.toml, then run. Rules call `genssl` from .venv/bin, which is put first on PATH here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
CORES ?= $(shell nproc)
CONFIG ?= config/config.yaml
SNAKEMAKE_ARGS ?=
TARGETS ?=
PYTEST_ARGS ?=
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: study report test test-fast test-slurm lint venv push pull clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# TARGETS first and --configfile last: Snakemake's list options (--configfile, --forcerun) take every word after them.
study: $(STAMP)
	@genssl config --config $(CONFIG) > /dev/null  # names a bad key, or a YAML error's file and line
	snakemake $(TARGETS) --cores $(CORES) $(SNAKEMAKE_ARGS) --configfile $(CONFIG)

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

# DVC (README: DVC). push: refuse artifacts that do not match the configuration (genssl status names them), record
# the tracked artifacts in dvc.lock and upload them to the remote of .dvc/config; then commit dvc.lock.
push: $(STAMP)
	genssl status --config $(CONFIG) --check
	dvc commit --force --quiet
	dvc push
	@echo "pushed; now commit dvc.lock (git add dvc.lock && git commit) so that clones can pull these artifacts"

# pull: download the tracked artifacts of dvc.lock; remove those whose provenance does not match the configuration
# (named; Snakemake remakes them) and touch the current ones in DAG order, so that Snakemake takes them as up to
# date (pulled files have new times and no Snakemake metadata) and runs only what is downstream of them.
pull: $(STAMP)
	dvc pull
	genssl status --config $(CONFIG) --remove-stale
	targets="$$(genssl status --config $(CONFIG) --current-targets)"; \
	if [ -n "$$targets" ]; then snakemake --cores 1 --configfile $(CONFIG) --touch --forceall $$targets; fi

clean:
	rm -rf results logs .snakemake
