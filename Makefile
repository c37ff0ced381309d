# Two set-up commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: serve test lint install-serve install-all system-deps clean train-default card ablation-run ablation-eval ablation-table ship-run ship-default card-fast

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

## The ablation of the base recipe (`training/configs/default_tsrn.yml`): TSRN trained three ways (pixel + a feature
## teacher on the service recognizer; pixel only; pixel + KL/CTC through that recognizer) -> ONNX -> eval (service and
## held-out recognizers) -> ablation table, which the shipped model's card includes. Each arm keeps the checkpoint that
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
## Everything from data to a shipped folder: the data, the ablation, one more stage of the shipped lineage (ship-run),
## and that stage shipped (ship-default).
train-default: install-all system-deps
	$(BIN)/textsr gen-data --out $(ABLATION_DATA) --train 12000 --val 768 --test 300 --seed 0
	$(MAKE) ablation-run ship-run
	$(MAKE) ship-default SHIP_CHECKPOINT=$(SHIP_RUN)/graft.pdparams SHIP_TRAIN_DIRS=$(SHIP_RUN)/network

## The shipped model is the base recipe with a text prior (SHIP_CONFIG), trained in stages (sessions 12-19, the lineage
## in its card) into SHIP_START. ship-run trains one more stage from it the way session 19 made it: the network on its
## recipe for SHIP_STEPS steps; the prior generator alone (`textsr train-prior`) for SHIP_PRIOR_STEPS; the generator
## that reads val/ best grafted onto the network's last (averaged) weights: $(SHIP_RUN)/graft.pdparams.
SHIP_CONFIG      := training/configs/prior_glyph_tsrn.yml
SHIP_START       ?= checkpoints/glyph-prior/model.pdparams
SHIP_RUN         ?= output/ship-run
SHIP_STEPS       ?= 400
SHIP_PRIOR_STEPS ?= 600
SHIP_SCALES      ?= 0.6 0.8 1
SHIP_EXTRA       ?=
SHIP_PRIOR_EXTRA ?=
SHIP_OPTS = -o Train.dataset.data_dir=$(ABLATION_DATA)/train Eval.dataset.data_dir=$(ABLATION_DATA)/val \
    Global.pretrained_model=$(SHIP_START)
ship-run:
	$(BIN)/textsr train -c $(SHIP_CONFIG) $(SHIP_OPTS) Global.max_steps=$(SHIP_STEPS) Global.epoch_num=10 \
	    Global.save_model_dir=$(SHIP_RUN)/network $(SHIP_EXTRA)
	$(BIN)/textsr train-prior -c $(SHIP_CONFIG) $(SHIP_OPTS) Global.prior_steps=$(SHIP_PRIOR_STEPS) \
	    Global.prior_learning_rate=2e-5 Train.loader.batch_size_per_card=16 Global.save_model_dir=$(SHIP_RUN)/prior $(SHIP_PRIOR_EXTRA)
	$(BIN)/python -m training.graft $(SHIP_RUN)/network/latest.pdparams $(SHIP_RUN)/prior/prior_best.pdparams $(SHIP_RUN)/graft.pdparams

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

## The residual scale of SHIP_CHECKPOINT chosen on val/ (training.residual_scale: the most faithful of those that read
## more crops than bicubic at bicubic's PSNR and SSIM; none: nothing ships), or SHIP_SCALE if given; then convert (+fp16,
## the prior generator bundled), evaluate on test/ and write the card. SHIP_TRAIN_DIRS: the logs of its last stage.
SHIP_CHECKPOINT ?= $(SHIP_START)
SHIP_TRAIN_DIRS ?= checkpoints/glyph-prior
SHIP_SCALE      ?=
ship-default:
	mkdir -p $(SHIP_RUN)/scale
	$(BIN)/python -m training.residual_scale -c $(SHIP_CONFIG) --data $(ABLATION_DATA)/val --checkpoint $(SHIP_CHECKPOINT) \
	    --scales $(SHIP_SCALES) --out $(SHIP_RUN)/scale || test -n "$(SHIP_SCALE)"
	$(if $(SHIP_SCALE),echo $(SHIP_SCALE),$(BIN)/python -m training.residual_scale --pick $(SHIP_RUN)/scale) > $(SHIP_RUN)/scale/picked
	rm -rf $(DEFAULT_MODEL)/source
	$(BIN)/textsr convert --config $(SHIP_CONFIG) --checkpoint $(SHIP_CHECKPOINT) --out $(DEFAULT_MODEL) --name gestalt-tsrn-synth \
	    --fp16 -o Architecture.Transform.residual_scale=$$(cat $(SHIP_RUN)/scale/picked)
	mkdir -p $(DEFAULT_MODEL)/source && cp $(SHIP_CHECKPOINT) $(DEFAULT_MODEL)/source/
	cp $(SHIP_RUN)/scale/residual_scale.png $(SHIP_RUN)/scale/residual_scale.json $(DEFAULT_MODEL)/
	$(BIN)/python -m training.plots $(SHIP_TRAIN_DIRS) --out $(DEFAULT_MODEL)/training_curves.png
	$(BIN)/textsr eval --model-dir $(DEFAULT_MODEL) --data $(ABLATION_DATA)/test --out $(DEFAULT_MODEL)
	$(MAKE) card SHIP_TRAIN_DIRS="$(SHIP_TRAIN_DIRS)"

DATA_NOTE := 12,000 synthetic pairs from \`textsr gen-data --seed 0\` (words from wordfreq, Debian fonts, Real-ESRGAN-style LR chain); val: 768 (checkpoint choice); test: 300 per split, \`unseen\` with degradations training never sees.
card:
	$(BIN)/python -m training.model_card --model-dir $(DEFAULT_MODEL) --train-dir $(SHIP_TRAIN_DIRS) --config $(SHIP_CONFIG) \
	    --extra training/configs/prior_glyph_tsrn_lineage.md training/configs/default_tsrn_notes.md \
	    --made-by "its last stage; the stages before it under How it was trained" --data-note "$(DATA_NOTE)"

## The fast model (no text prior; the default of sessions 9-19): the base recipe's run, converted at its step 4600.
FAST_MODEL := models/gestalt-tsrn-synth-fast
card-fast:
	$(BIN)/python -m training.model_card --model-dir $(FAST_MODEL) --train-dir checkpoints/deep-feature-teacher --last-step 4600 \
	    --config $(DEFAULT_CONFIG) --extra training/configs/fast_model_notes.md --made-by "About this model, below" \
	    --data-note "$(DATA_NOTE)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
