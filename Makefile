# The two Quick start commands, and the checks CI runs. Installs into .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint install bench bench-throughput bench-ratelimit bench-manifest bench-overhead bench-scaleout

$(BIN)/mori-pipeline: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v "is ignored" || true
	@test -x $(BIN)/mori-pipeline || (echo "install failed" >&2; exit 1)
	@touch $@

install: $(BIN)/mori-pipeline

demo: install
	$(BIN)/mori-pipeline demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install lint
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/pytest

# Benchmarks (BENCHMARKS.md). ARGS is passed on, e.g. `make bench-ratelimit ARGS="--rpm 120"`.
BENCHES := throughput ratelimit manifest overhead scaleout

$(addprefix bench-,$(BENCHES)): bench-%: install
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python -m bench.$* $(ARGS)

bench: $(addprefix bench-,$(BENCHES))
