# The two Quick start commands, and the checks CI runs. Installs into .venv on first use: exactly
# the versions in requirements.lock, every file checked against its hash. After changing the
# dependencies in pyproject.toml, `make lock` refreshes the lock (commit both).
SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip --quiet --disable-pip-version-check
# pip's warnings about index locations of the machine's pip configuration that do not exist
# are dropped; its exit status is kept (pipefail).
QUIET  := 2>&1 | sed '/is ignored/d'
# How requirements.lock is made (pip-tools; the header of the lock repeats it).
LOCK_OPTIONS := --generate-hashes --allow-unsafe --strip-extras --build-deps-for editable \
	--extra dev --extra emulator --extra report --no-emit-index-url --no-emit-find-links

.PHONY: demo test lint install lock bench bench-throughput bench-ratelimit bench-manifest bench-overhead bench-report bench-scaleout

$(BIN)/mori-pipeline: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --require-hashes -r requirements.lock $(QUIET)
	@# the project itself, built with the locked setuptools (its notice about editable installs
	@# is silenced)
	PYTHONWARNINGS=ignore $(PIP) install --no-deps --no-build-isolation -e . $(QUIET)
	@test -x $(BIN)/mori-pipeline || (echo "install failed" >&2; exit 1)
	@touch $@

install: $(BIN)/mori-pipeline

lock:
	@test -x $(BIN)/pip-compile || $(MAKE) install
	$(BIN)/pip-compile --quiet $(LOCK_OPTIONS) --output-file requirements.lock pyproject.toml
	@echo "requirements.lock refreshed; run make install and commit it with pyproject.toml"

demo: install
	$(BIN)/mori-pipeline demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install lint
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/pytest

# Benchmarks (BENCHMARKS.md). ARGS is passed on, e.g. `make bench-ratelimit ARGS="--rpm 120"`.
BENCHES := throughput ratelimit manifest overhead report scaleout

$(addprefix bench-,$(BENCHES)): bench-%: install
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python -m bench.$* $(ARGS)

bench: $(addprefix bench-,$(BENCHES))
