# Sprout — `make up` runs the product, `make test` runs the whole test suite.
# Both install what they need first, so on a fresh machine (Debian/Ubuntu, Python 3.11) they are all the set-up:
# `make up` the Python environments; `make test` also the test tooling and system packages (root or sudo).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SPROUT := $(VENV)/bin/sprout
STAMP  := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# Airflow lives in its own virtualenv (it pins its own FastAPI); the DAG tasks run the `sprout` CLI, never `model`.
AIRFLOW_VENV  := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
AIRFLOW_PKGS  := 'apache-airflow>=3.3,<4' 'apache-airflow-providers-cncf-kubernetes>=10.5' 'psycopg2-binary>=2.9' 'asyncpg>=0.29'
# Grafana dashboard type check (tests/deploy): @grafana/schema + TypeScript from npm, pinned by package-lock.json.
GRAFANA_CHECK := tests/deploy/grafana
GRAFANA_STAMP := $(GRAFANA_CHECK)/node_modules/.installed

.PHONY: install run-deps system-deps test-deps up down test test-fast lint bench clean env

## What running needs: the project venv and Airflow's.
run-deps: $(STAMP) $(AIRFLOW_STAMP)

## System packages of the tests (PostgreSQL, Chromium, Prometheus, docker-compose, npm): idempotent, fast when present.
system-deps:
	scripts/install-test-deps.sh

## What the tests need besides: the test tooling, those system packages and the Grafana type checker.
test-deps: system-deps run-deps $(DEV_STAMP) $(GRAFANA_STAMP)

install: test-deps

# `make up` runs the whole product on one machine: the `stack` extra (API, UI, training, the MLflow server).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel
	$(PY) -m pip install --quiet -e '.[stack]'
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

$(AIRFLOW_STAMP): Makefile
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip wheel
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet $(AIRFLOW_PKGS)
	touch $(AIRFLOW_STAMP)

$(GRAFANA_STAMP): $(GRAFANA_CHECK)/package.json $(GRAFANA_CHECK)/package-lock.json | system-deps
	cd $(GRAFANA_CHECK) && npm ci --no-audit --no-fund --loglevel=error
	touch $(GRAFANA_STAMP)

## Write .env with random secrets for docker compose (kept when it exists; scripts/gen-env.sh --help).
env:
	scripts/gen-env.sh

## Start the API and the Streamlit app (training a first model from SPROUT_SEED_DATASET if there is none).
up: run-deps
	scripts/up.sh

## Stop what `make up` started.
down:
	scripts/down.sh

test: test-deps
	$(PY) -m pytest

## The inner loop: every test that needs no server, browser or root (tests/utils/markers.py marks the others); only
## the project's virtualenv (no system packages, no Airflow). On every core: a file per pytest-xdist worker, the
## slow files first, one compute thread per worker (two workers on two cores, no thread waits on another's).
test-fast: $(DEV_STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n auto --dist loadfile --no-loadscope-reorder \
		-m "not server and not browser and not root"

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy model db api streamlit_app
	$(VENV)/bin/lint-imports

bench: run-deps
	$(PY) bench/retrain.py
	$(PY) bench/serve.py

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) $(GRAFANA_CHECK)/node_modules .sprout .pytest_cache .ruff_cache
