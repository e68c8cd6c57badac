# `make demo` and `make test` each set up .venv on first use (a few minutes), then do their job.
# A second call finds the install stamp newer than its inputs and goes straight to the job.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mimdet-installed
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-all lint

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml scripts/install_detectron2.sh
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PINS)
	PYTHON=$(PY) bash scripts/install_detectron2.sh
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m mimdet.demo

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy sweeps analysis mimdet

test: lint
	$(PY) -m pytest

test-all: lint
	$(PY) -m pytest -m ""
