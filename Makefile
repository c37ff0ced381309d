# Two set-up commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: serve test lint install-serve install-all system-deps clean train-default

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

## The shipped default model: synthetic data -> TSRN (MSE) -> ONNX (+fp16) -> eval -> model card.
DEFAULT_MODEL := models/gestalt-tsrn-synth
train-default: install-all system-deps
	$(BIN)/textsr gen-data --out train_data/synth --train 12000 --test 300 --seed 0
	$(BIN)/textsr train -c training/configs/default_tsrn.yml
	$(BIN)/textsr convert --config training/configs/default_tsrn.yml --checkpoint output/sr/default_tsrn/best_accuracy.pdparams \
	    --out $(DEFAULT_MODEL) --name gestalt-tsrn-synth --fp16
	$(BIN)/textsr eval --model-dir $(DEFAULT_MODEL) --data train_data/synth/test --out $(DEFAULT_MODEL)
	$(BIN)/python -m training.model_card --model-dir $(DEFAULT_MODEL) --train-dir output/sr/default_tsrn \
	    --config training/configs/default_tsrn.yml --extra training/configs/default_tsrn_notes.md \
	    --data-note "12,000 synthetic pairs from \`textsr gen-data --seed 0\` (words from wordfreq, Debian fonts, camera-like LR degradation); test: 300 per split."

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
