# Two entry points: `make demo` and `make test`. Both set up .venv first (CPU PyTorch).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.segedge-installed

.PHONY: setup demo test test-fast

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the CPU build of PyTorch first: an unpinned resolve could pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[cpu,test]'
	# segedge serve: Triton's server binary from nvidia-pytriton, without its numpy<2 pin (see pyproject's serve extra)
	$(BIN)/python -m pip install -q --no-deps nvidia-pytriton==0.7.0
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/segedge demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"
