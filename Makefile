# imagegate: `make serve` and `make test` do all the set-up on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
IMAGEGATE_HOST ?= 127.0.0.1
IMAGEGATE_PORT ?= 8000

.PHONY: help serve test lint bench clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)  ## create .venv if missing, install, start the server on 127.0.0.1:8000
	$(BIN)/imagegate serve --host $(IMAGEGATE_HOST) --port $(IMAGEGATE_PORT)

test: $(STAMP)  ## the layer contracts, then the whole suite
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

lint: $(STAMP)  ## ruff, mypy --strict on src/, the layer contracts
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)  ## print the benchmark figures (needs PostgreSQL and Redis for the side-by-side rows)
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/limits.py
	$(BIN)/python bench/admission.py
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/relay.py --workers 1,2
	$(BIN)/python bench/metrics.py
	$(BIN)/python bench/relay_memory.py
	command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)
	$(BIN)/python bench/instructions.py
	$(BIN)/python bench/edit_memory.py

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .hypothesis
