# Every target sets up .venv first (idempotent: a stamp file tracks pyproject.toml).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
STATION ?= stations/fake.yaml

.PHONY: venv test unit hil qualify lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: venv
	$(PY) -m pytest tests_unit tests_hil --station $(STATION) -q $(PYTEST_ARGS)

unit: venv
	$(PY) -m pytest tests_unit -q $(PYTEST_ARGS)

qualify: venv
	$(PY) -m pytest tests_hil --station stations/sim.yaml -q $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check harness tests_unit tests_hil bench
	$(VENV)/bin/mypy

bench: venv
	$(PY) -m bench

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
