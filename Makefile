# upsert_pipeline — `make dev` and `make test` are the two a newcomer needs; each sets up what it
# uses from this project's own files (uv, the locked virtualenv, sample data, system packages).
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
# uv: the one on PATH, else the pinned version installed with $(PYTHON) into .tools/ (no root,
# no change to the system Python: `pip install --target`).
UV_LOCAL := $(CURDIR)/.tools/uv/bin/uv
UV ?= $(shell command -v uv 2>/dev/null || echo $(UV_LOCAL))
RUN := $(UV) run --frozen
DAGSTER_DEV_HOME := $(CURDIR)/.dagster_home
LANDING := $(CURDIR)/data/landing
PYTEST_ARGS ?=
PORT ?= 3000

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

$(UV_LOCAL):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(CURDIR)/.tools/uv "uv==$(UV_VERSION)"

.PHONY: uv
uv: ## Install the pinned uv (0.13.9) into .tools/ with python3 when none is on PATH
	@if [ "$(UV)" = "$(UV_LOCAL)" ]; then $(MAKE) --no-print-directory $(UV_LOCAL); fi

.PHONY: install
install: uv ## Create .venv from uv.lock (the exact, locked versions)
	$(UV) sync --frozen

# Tops the sample landing data up to yesterday (days already there, re-deliveries included, are
# left alone), so the partitions the UI offers all have a batch on any later day too.
.PHONY: sample-data-through-yesterday
sample-data-through-yesterday: install
	$(RUN) python -m upsert_pipeline.sample_data --landing $(LANDING) --missing-only
	$(RUN) python -m upsert_pipeline.sample_partner

# `make sample-data FEED=shipments [PARTITIONS=5]`: plausible files for any declared feed instead.
FEED ?=
PARTITIONS ?= 3

.PHONY: sample-data
sample-data: install ## Generate the sample landing batches under data/landing (FEED=<feed>: that feed's, from its YAML)
	@if [ -n "$(FEED)" ]; then \
	  $(RUN) python -m upsert_pipeline.sample_feed $(FEED) --partitions $(PARTITIONS) --landing $(LANDING); \
	else \
	  $(RUN) python -m upsert_pipeline.sample_data --landing $(LANDING) && \
	  $(RUN) python -m upsert_pipeline.sample_partner; \
	fi

.PHONY: redeliver
redeliver: install ## Replace some days' landing batches with corrected re-deliveries
	$(RUN) python -m upsert_pipeline.sample_data --landing $(LANDING) --redeliver

# The dev instance's dagster.yaml: SQLite storage (Dagster's default), no telemetry, no community
# sign-up dialog, and a run queue sized for a laptop (see deploy/dev_instance.yaml).
$(DAGSTER_DEV_HOME)/dagster.yaml: deploy/dev_instance.yaml
	mkdir -p $(DAGSTER_DEV_HOME)
	cp deploy/dev_instance.yaml $@

# `dagster dev` starts in .dagster_home/: started in the project folder, beside the deployment's
# dagster.yaml, it warns that that file is not the instance's (it is not meant to be).
.PHONY: dev
dev: install sample-data-through-yesterday $(DAGSTER_DEV_HOME)/dagster.yaml ## Run `dagster dev` on http://127.0.0.1:$(PORT) (`make dev PORT=3001`; SQLite instance in .dagster_home/)
	cd $(DAGSTER_DEV_HOME) && DAGSTER_HOME=$(DAGSTER_DEV_HOME) $(RUN) --project $(CURDIR) \
	  dagster dev -m upsert_pipeline.definitions -d $(CURDIR) -p $(PORT)

.PHONY: defs
defs: install $(DAGSTER_DEV_HOME)/dagster.yaml ## List what the defs folder declares (`dg list defs`)
	DAGSTER_HOME=$(DAGSTER_DEV_HOME) $(RUN) dg list defs

.PHONY: check-defs
check-defs: install ## Validate every feed's defs.yaml: each mistake with file, line and fix (no Dagster load)
	$(RUN) python -m upsert_pipeline.check_defs

# `make dev-postgres`: the deployment's instance (dagster.yaml: PostgreSQL, run queue; runs as
# children of `dagster dev`, not in containers) on a local server; override any of these from the
# environment or the command line.
DAGSTER_POSTGRES_HOME := $(CURDIR)/.dagster_postgres_home
DAGSTER_POSTGRES_HOST ?= 127.0.0.1
DAGSTER_POSTGRES_PORT ?= 5432
DAGSTER_POSTGRES_USER ?= postgres
DAGSTER_POSTGRES_PASSWORD ?=
DAGSTER_POSTGRES_DB ?= upsert_pipeline
DEV_POSTGRES_ENV = DAGSTER_HOME='$(DAGSTER_POSTGRES_HOME)' \
	DAGSTER_POSTGRES_HOST='$(DAGSTER_POSTGRES_HOST)' DAGSTER_POSTGRES_PORT='$(DAGSTER_POSTGRES_PORT)' \
	DAGSTER_POSTGRES_USER='$(DAGSTER_POSTGRES_USER)' DAGSTER_POSTGRES_PASSWORD='$(DAGSTER_POSTGRES_PASSWORD)' \
	DAGSTER_POSTGRES_DB='$(DAGSTER_POSTGRES_DB)'

.PHONY: dev-postgres
dev-postgres: install sample-data-through-yesterday ## Run `dagster dev` with dagster.yaml on the PostgreSQL at 127.0.0.1:5432
	mkdir -p $(DAGSTER_POSTGRES_HOME)
	$(RUN) python -m deploy.instance in-process dagster.yaml $(DAGSTER_POSTGRES_HOME)/dagster.yaml
	$(DEV_POSTGRES_ENV) $(RUN) python -m deploy.instance check --create-database
	$(DEV_POSTGRES_ENV) $(RUN) dagster dev -m upsert_pipeline.definitions

# What the test suite uses beyond the virtualenv: Chromium and its driver (the browser tests),
# a PostgreSQL server at 127.0.0.1:5432, and for test_compose_engine.py a real Docker engine
# (docker.io: dockerd, started by the test when none runs, and its BuildKit client),
# docker-compose (Debian's 1.29: validates and runs docker-compose.yml) and mmdebstrap (builds
# stand-ins of the images no registry can be reached for; see upsert_pipeline_tests/docker_standins).
SYSTEM_PACKAGES := chromium chromium-driver docker-compose docker.io mmdebstrap postgresql-client
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends

.PHONY: system-deps
system-deps: ## Install the Debian packages the tests use (as root), or name the command that would
	@missing=(); for package in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing+=($$package); \
	done; \
	if (( $${#missing[@]} )); then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $${missing[*]}"; \
	    apt-get update -qq && $(APT_INSTALL) "$${missing[@]}"; \
	  else \
	    echo "the tests need: $${missing[*]}; run: sudo apt-get install -y $${missing[*]}" >&2; exit 1; \
	  fi; \
	fi

.PHONY: postgres
postgres: system-deps ## Start the local PostgreSQL cluster when it is not accepting connections
	@if ! pg_isready -q -h 127.0.0.1 -p 5432; then \
	  start="pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql 2>/dev/null | tail -1) main start"; \
	  if [ "$$(id -u)" = 0 ] && [ -d /etc/postgresql ]; then \
	    echo "$$start"; $$start; \
	    for _ in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	  fi; \
	  pg_isready -q -h 127.0.0.1 -p 5432 || { \
	    echo "no PostgreSQL at 127.0.0.1:5432; run: sudo $$start" >&2; exit 1; }; \
	fi

.PHONY: lint
lint: install ## ruff (lint and format check) and mypy on the package
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

.PHONY: test
test: lint postgres ## Lint, type-check and run the whole test suite (installs what it uses first)
	$(RUN) pytest $(PYTEST_ARGS)

.PHONY: screenshots
screenshots: install system-deps ## Retake docs/ui-*.png through the browser test (webserver + headless Chromium)
	UPSERT_PIPELINE_SCREENSHOTS=docs $(RUN) pytest upsert_pipeline_tests/test_ui_browser.py

.PHONY: bench
bench: install ## Run the benchmarks (about an hour) and rewrite BENCHMARKS.md and docs/bench_*.png
	$(RUN) python -m bench --out bench/results --markdown BENCHMARKS.md --plots docs

.PHONY: bench-backfill-ui
bench-backfill-ui: install ## Time a 10-partition backfill of orders launched as the UI does (about 2 min)
	$(RUN) python -m bench.backfill_ui

.PHONY: clean
clean: ## Remove the generated lake, landing data and dev instance
	rm -rf data/lake data/landing $(DAGSTER_DEV_HOME)

.PHONY: mutation
mutation: install ## Mutation testing of the merge's core modules ([tool.mutmut]; ~30 min; not in `make test`)
	$(RUN) mutmut run --max-children 2
	$(RUN) mutmut results
