# Two set-up commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: serve test lint install-serve install-all system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.serve-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[serve]'
	touch $@

$(VENV)/.all-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[serve,train,convert,dev]'
	touch $@ $(VENV)/.serve-installed

install-serve: $(VENV)/.serve-installed
install-all: $(VENV)/.all-installed

## Start the service on the shipped default model (CPU when there is no GPU).
serve: install-serve
	$(BIN)/textsr serve

## Install everything, then lint and run every test.
test: install-all system-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: install-all
	$(BIN)/ruff check .

## Debian tools the tests use for real (nginx, Prometheus, fonts); installed only when missing.
system-deps:
	@bash scripts/system-deps.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
