# Two set-up commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: serve test lint install-serve install-all system-deps clean train-default card ablation-run ablation-eval ablation-table ship-default

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

## The shipped default model: synthetic data -> TSRN trained three ways (the default config: pixel + a feature teacher
## on the service recognizer; pixel only; pixel + KL/CTC through that recognizer) -> ONNX -> eval (service and held-out
## recognizers) -> ablation table; the default arm ships (+fp16) with its model card. Each arm keeps the checkpoint that
## reads best on val/ (768 crops).
DEFAULT_MODEL  := models/gestalt-tsrn-synth
DEFAULT_CONFIG := training/configs/default_tsrn.yml
ABLATION       ?= output/rec
ABLATION_DATA  ?= train_data/synth
ABLATION_OUT   ?= $(DEFAULT_MODEL)
ABLATION_STEPS ?= 2200
ARM_EXTRA      ?=
ARM_OPTS = -o Train.dataset.data_dir=$(ABLATION_DATA)/train Eval.dataset.data_dir=$(ABLATION_DATA)/val \
    Global.max_steps=$(ABLATION_STEPS) $(ARM_EXTRA)
# Each arm: its folder under $(ABLATION), its label in the table, and what it changes in the default config.
ARMS := feature pixel recognition
ARM_LABEL_feature     := pixel + feature teacher (default)
ARM_LABEL_pixel       := pixel only
ARM_LABEL_recognition := pixel + KL/CTC
ARM_SET_feature       :=
ARM_SET_pixel         := Loss.teacher_weight=0
ARM_SET_recognition   := Loss.teacher=kl Loss.teacher_weight=0.01 Loss.ctc_weight=0.003
train-default: install-all system-deps
	$(BIN)/textsr gen-data --out $(ABLATION_DATA) --train 12000 --val 768 --test 300 --seed 0
	$(MAKE) ablation-run ship-run ship-default

## The shipped model goes on past the ablation's budget: the default recipe to step 3200, then with an EMA of its weights
## (Global.ema_decay=0.995) to step $(SHIP_STEPS); ship-default chooses the strength of its residual on val/.
SHIP_RUN        ?= output/ship-run
SHIP_BASE_STEPS ?= 3200
SHIP_STEPS      ?= 4600
SHIP_SCALES     ?= 0.3 0.4 0.5 0.6 0.8 1
SHIP_EXTRA      ?=
SHIP_OPTS = -o Train.dataset.data_dir=$(ABLATION_DATA)/train Eval.dataset.data_dir=$(ABLATION_DATA)/val $(SHIP_EXTRA)
ship-run:
	$(BIN)/textsr train -c $(DEFAULT_CONFIG) $(SHIP_OPTS) Global.max_steps=$(SHIP_BASE_STEPS) Global.save_model_dir=$(SHIP_RUN)/base
	$(BIN)/textsr train -c $(DEFAULT_CONFIG) $(SHIP_OPTS) Global.max_steps=$(SHIP_STEPS) Global.ema_decay=0.995 \
	    Global.checkpoints=$(SHIP_RUN)/base/latest Global.save_model_dir=$(SHIP_RUN)/ema

ablation-run:
	$(foreach arm,$(ARMS),$(BIN)/textsr train -c $(DEFAULT_CONFIG) $(ARM_OPTS) Global.save_model_dir=$(ABLATION)/$(arm) $(ARM_SET_$(arm)) &&) true
	$(MAKE) ablation-eval

## Convert and evaluate every arm's best checkpoint, then write the ablation table (the model card includes it).
ablation-eval:
	for arm in $(ARMS); do \
	    $(BIN)/textsr convert --config $(DEFAULT_CONFIG) --checkpoint $(ABLATION)/$$arm/best_accuracy.pdparams \
	        --out $(ABLATION)/$$arm/model --name ablation-$$arm && \
	    $(BIN)/textsr eval --model-dir $(ABLATION)/$$arm/model --data $(ABLATION_DATA)/test --out $(ABLATION)/$$arm/model \
	    || exit 1; done
	$(MAKE) ablation-table

ablation-table:
	$(BIN)/python -m training.ablation --out $(ABLATION_OUT) \
	    $(foreach arm,$(ARMS),--arm "$(ARM_LABEL_$(arm))=$(ABLATION)/$(arm)/model") \
	    --note "All arms train TSRN from the same bicubic start (step 0 reads exactly like bicubic) on the same data and batches \
	for up to $(ABLATION_STEPS) steps of batch 8 with the default config, and keep the checkpoint that reads best on val/; \
	$(foreach arm,$(filter-out feature,$(ARMS)),$(ARM_LABEL_$(arm)) sets \`$(ARM_SET_$(arm))\`;) \`make ablation-run\`."

## The residual scale chosen on val/ (training.residual_scale: the most faithful of those that read more crops than
## bicubic at bicubic's PSNR and SSIM; none: nothing ships), or SHIP_SCALE if given; then convert (+fp16), evaluate on
## test/ and write the card.
SHIP_CHECKPOINT ?= $(SHIP_RUN)/ema/latest.pdparams
SHIP_SCALE      ?=
ship-default:
	$(BIN)/python -m training.residual_scale -c $(DEFAULT_CONFIG) --data $(ABLATION_DATA)/val --checkpoint $(SHIP_CHECKPOINT) \
	    --scales $(SHIP_SCALES) --out $(SHIP_RUN)/scale || test -n "$(SHIP_SCALE)"
	$(if $(SHIP_SCALE),echo $(SHIP_SCALE),$(BIN)/python -m training.residual_scale --pick $(SHIP_RUN)/scale) > $(SHIP_RUN)/scale/picked
	$(BIN)/textsr convert --config $(DEFAULT_CONFIG) --checkpoint $(SHIP_CHECKPOINT) --out $(DEFAULT_MODEL) --name gestalt-tsrn-synth \
	    --fp16 -o Architecture.Transform.residual_scale=$$(cat $(SHIP_RUN)/scale/picked)
	mkdir -p $(DEFAULT_MODEL)/source && cp $(SHIP_CHECKPOINT) $(DEFAULT_MODEL)/source/
	cp $(SHIP_RUN)/scale/residual_scale.png $(SHIP_RUN)/scale/residual_scale.json $(DEFAULT_MODEL)/
	$(BIN)/python -m training.plots $(SHIP_RUN)/base $(SHIP_RUN)/ema --out $(DEFAULT_MODEL)/training_curves.png
	$(BIN)/textsr eval --model-dir $(DEFAULT_MODEL) --data $(ABLATION_DATA)/test --out $(DEFAULT_MODEL)
	$(MAKE) card

card:
	$(BIN)/python -m training.model_card --model-dir $(DEFAULT_MODEL) --train-dir $(SHIP_RUN)/base $(SHIP_RUN)/ema \
	    --config $(DEFAULT_CONFIG) --extra training/configs/default_tsrn_notes.md \
	    --data-note "12,000 synthetic pairs from \`textsr gen-data --seed 0\` (words from wordfreq, Debian fonts, Real-ESRGAN-style LR chain); val: 768 (checkpoint choice); test: 300 per split, \`unseen\` with degradations training never sees."

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
