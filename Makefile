# Two entry points (README quickstart): `make demo` and `make test`. Both set up .venv first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0
FA      := face-alignment==1.5.0

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

# torch first, from the exact pin (never let pip resolve a CUDA build); face-alignment without its
# declared deps (they include the GUI opencv-python, which would shadow the headless build).
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[ml,aws,local,infra,dev]"
	$(BIN)/pip install -q --no-deps $(FA)
	touch $@

demo: setup
	$(BIN)/sadtalker generate --image examples/portrait.png --audio examples/speech.wav -o out/demo.mp4

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out cdk.out .pytest_cache
