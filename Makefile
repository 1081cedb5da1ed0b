# Two entry points (README quickstart): `make demo` and `make test`. Both set up .venv first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
LOCK    := requirements.lock

.PHONY: setup demo test test-fast lint lock clean

setup: $(STAMP)

# Versions come from requirements.lock (the images install the same file). torch first, at the locked
# version (never let pip resolve a CUDA build); face-alignment without its declared deps (they include
# the GUI opencv-python, which would shadow the headless build).
$(STAMP): pyproject.toml Makefile $(LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c $(LOCK) torch
	$(BIN)/pip install -q -c $(LOCK) -e ".[ml,aws,local,infra,dev]"
	$(BIN)/pip install -q --no-deps -c $(LOCK) face-alignment
	touch $@

demo: setup
	$(BIN)/sadtalker generate --image examples/portrait.png --audio examples/speech.wav -o out/demo.mp4

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# Unit and contract tests (no whole jobs, no whole clips, no full-size networks): under 3 minutes on 2 cores.
test-fast: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow and not job and not heavy" tests/unit tests/infra tests/pipeline tests/reliability

lint: setup
	$(BIN)/ruff check .

# After changing dependencies: the closure the images install, from this environment.
lock: setup
	$(BIN)/python infra/images/write_lock.py

clean:
	rm -rf $(VENV) out cdk.out .pytest_cache
