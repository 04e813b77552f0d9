# Two commands on a fresh machine: `make run` (UI + daemon) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 3000

.PHONY: run test bench lint install clean-instance

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the dependency list changes: the second `make` is fast.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: export DAGSTER_HOME ?= $(CURDIR)/.dagster
# The webhook receiver (NIGHTSHIFT_WEBHOOKS_PORT, default 8090) runs beside the UI and stops with it; if its
# port is taken it says so and exits, and the UI keeps running.
run: install
	$(BIN)/nightshift init
	@$(BIN)/nightshift webhooks serve & receiver=$$!; \
	trap 'kill $$receiver 2>/dev/null; wait $$receiver 2>/dev/null' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

# The layer contracts (pyproject.toml, import-linter) first: a wrong import arrow fails the tests.
# Three workers, each test file on one of them: most tests wait on processes, servers and databases.
test: install
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -n 3 --dist loadfile

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .

clean-instance:
	rm -rf .dagster
