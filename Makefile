# Sprout — `make up` runs the product, `make test` runs the whole test suite.
# Both install everything first (a .venv in the repo), so on a fresh machine they are all the set-up.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SPROUT := $(VENV)/bin/sprout
STAMP  := $(VENV)/.installed

.PHONY: install up down test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel
	$(PY) -m pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

## Start the API and the Streamlit app (training a first model from SPROUT_SEED_DATASET if there is none).
up: install
	scripts/up.sh

## Stop what `make up` started.
down:
	scripts/down.sh

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) bench/retrain.py
	$(PY) bench/serve.py

clean:
	rm -rf $(VENV) .sprout .pytest_cache .ruff_cache
