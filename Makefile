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

# The main job: the parameter table of every paper variant, then the tiny Table 2 sweep on the CPU
# (3 trainings, 6 evaluations; resumes where it stopped), its results, figures and LaTeX table, and
# Table 2 in Markdown beside the paper's numbers.
TINY := sweeps/tiny/table2.yaml
SWEEP := $(VENV)/bin/sweep
demo: install
	$(PY) -m mimdet.demo
	$(SWEEP) run $(TINY) --max-parallel 3
	$(SWEEP) collect $(TINY) -o results/tiny_table2.parquet
	$(SWEEP) plot $(TINY) -o results/plots
	$(SWEEP) table $(TINY) --format latex --with-paper -o results/tiny_table2.tex
	$(SWEEP) table $(TINY) --format md --with-paper

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy sweeps analysis mimdet cli

test: lint
	$(PY) -m pytest

test-all: lint
	$(PY) -m pytest -m ""
