# Two set-up commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: serve test lint install-serve install-all system-deps clean train-default card ablation-default ablation-run

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.serve-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[serve]'
	touch $@

# rapidocr-onnxruntime only for its PP-OCRv4 model file (the held-out recognizer of `textsr eval`): without its
# dependencies, whose `onnxruntime` would overwrite onnxruntime-gpu's files.
$(VENV)/.all-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[serve,train,convert,dev]'
	$(PIP) install -q --no-deps rapidocr-onnxruntime==1.4.4
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
DEFAULT_MODEL  := models/gestalt-tsrn-synth
DEFAULT_CONFIG := training/configs/default_tsrn.yml
DEFAULT_RUN    ?= output/sr/default_tsrn
train-default: install-all system-deps
	$(BIN)/textsr gen-data --out train_data/synth --train 12000 --test 300 --seed 0
	$(BIN)/textsr train -c $(DEFAULT_CONFIG)
	$(BIN)/textsr convert --config $(DEFAULT_CONFIG) --checkpoint $(DEFAULT_RUN)/best_accuracy.pdparams \
	    --out $(DEFAULT_MODEL) --name gestalt-tsrn-synth --fp16
	$(BIN)/textsr eval --model-dir $(DEFAULT_MODEL) --data train_data/synth/test --out $(DEFAULT_MODEL)
	$(MAKE) card

card:
	$(BIN)/python -m training.model_card --model-dir $(DEFAULT_MODEL) --train-dir $(DEFAULT_RUN) \
	    --config $(DEFAULT_CONFIG) --extra training/configs/default_tsrn_notes.md \
	    --data-note "12,000 synthetic pairs from \`textsr gen-data --seed 0\` (words from wordfreq, Debian fonts, camera-like LR degradation); test: 300 per split."

## Ablation on the default model: pixel MSE vs StrokeFocusLoss (Text Gestalt's text-focus loss), both continuing
## the shipped checkpoint for the same steps at lr 5e-5 with a fresh optimiser; the loss's recognizer is pretrained
## first at width 0.125 (~1M parameters: what 2 CPU cores allow). Writes $(DEFAULT_MODEL)/ablation.md|json; the card
## includes them.
ABLATION         ?= output/ablation
ABLATION_DATA    ?= train_data/synth
ABLATION_FROM    ?= $(DEFAULT_MODEL)/source/best_accuracy.pdparams
ABLATION_OUT     ?= $(DEFAULT_MODEL)
ABLATION_STEPS   ?= 500
RECOGNIZER_STEPS ?= 2500
RECOGNIZER_WIDTH ?= 0.125
ABLATION_OPTS = -o Train.dataset.data_dir=$(ABLATION_DATA)/train Eval.dataset.data_dir=$(ABLATION_DATA)/test \
    Global.recognizer_width=$(RECOGNIZER_WIDTH)
ARM_OPTS = $(ABLATION_OPTS) Global.pretrained_model=$(ABLATION_FROM) Global.max_steps=$(ABLATION_STEPS) \
    "Optimizer.lr.values=[0.00005,0.00005]"
ablation-default: install-all system-deps
	$(MAKE) ablation-run card

ablation-run:
	$(BIN)/textsr train-recognizer -c $(DEFAULT_CONFIG) $(ABLATION_OPTS) Global.save_model_dir=$(ABLATION)/recognizer \
	    Global.recognizer_steps=$(RECOGNIZER_STEPS) Global.recognizer_learning_rate=0.0005 Train.loader.batch_size_per_card=16
	$(BIN)/textsr train -c $(DEFAULT_CONFIG) $(ARM_OPTS) Global.save_model_dir=$(ABLATION)/mse
	$(BIN)/textsr train -c $(DEFAULT_CONFIG) $(ARM_OPTS) Global.save_model_dir=$(ABLATION)/stroke Loss.name=StrokeFocusLoss \
	    Global.pretrained_recognizer=$(ABLATION)/recognizer/recognizer.pdparams
	for arm in mse stroke; do \
	    $(BIN)/textsr convert --config $(DEFAULT_CONFIG) --checkpoint $(ABLATION)/$$arm/latest.pdparams \
	        --out $(ABLATION)/$$arm/model --name ablation-$$arm && \
	    $(BIN)/textsr eval --model-dir $(ABLATION)/$$arm/model --data $(ABLATION_DATA)/test --out $(ABLATION)/$$arm/model \
	    || exit 1; done
	$(BIN)/python -m training.ablation --out $(ABLATION_OUT) --recognizer $(ABLATION)/recognizer/recognizer_metrics.json \
	    --arm "pixel MSE=$(ABLATION)/mse/model" --arm "StrokeFocusLoss=$(ABLATION)/stroke/model" \
	    --note "Both arms continue the shipped checkpoint ($(ABLATION_FROM)) for $(ABLATION_STEPS) steps of batch 8 at lr 5e-5 with a fresh Adam; they differ only in the loss. \`make ablation-default\`."

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
