# upsert_pipeline — `make dev` and `make test` are the two a newcomer needs.
SHELL := /bin/bash
UV ?= uv
RUN := $(UV) run --frozen
DAGSTER_DEV_HOME := $(CURDIR)/.dagster_home
LANDING := $(CURDIR)/data/landing
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

.PHONY: install
install: ## Create .venv from uv.lock (the exact, locked versions)
	$(UV) sync --frozen

$(LANDING)/orders:
	$(RUN) python -m upsert_pipeline.sample_data --landing $(LANDING)

.PHONY: sample-data
sample-data: install ## Generate the sample landing batches under data/landing (deterministic)
	$(RUN) python -m upsert_pipeline.sample_data --landing $(LANDING)

.PHONY: redeliver
redeliver: install ## Replace some days' landing batches with corrected re-deliveries
	$(RUN) python -m upsert_pipeline.sample_data --landing $(LANDING) --redeliver

.PHONY: dev
dev: install $(LANDING)/orders ## Run `dagster dev` on an embedded SQLite instance in .dagster_home/
	mkdir -p $(DAGSTER_DEV_HOME)
	DAGSTER_HOME=$(DAGSTER_DEV_HOME) $(RUN) dagster dev -m upsert_pipeline.definitions

# `make dev-postgres`: the deployment's instance (dagster.yaml: PostgreSQL, run queue) on a local
# server; override any of these from the environment or the command line.
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
dev-postgres: install $(LANDING)/orders ## Run `dagster dev` with dagster.yaml on the PostgreSQL at 127.0.0.1:5432
	mkdir -p $(DAGSTER_POSTGRES_HOME)
	cp dagster.yaml $(DAGSTER_POSTGRES_HOME)/dagster.yaml
	$(DEV_POSTGRES_ENV) $(RUN) python -m upsert_pipeline.instance check --create-database
	$(DEV_POSTGRES_ENV) $(RUN) dagster dev -m upsert_pipeline.definitions

.PHONY: lint
lint: install ## ruff (lint and format check) and mypy on the package
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

.PHONY: test
test: lint ## Lint, type-check and run the whole test suite
	$(RUN) pytest $(PYTEST_ARGS)

.PHONY: screenshots
screenshots: install ## Retake docs/ui-*.png through the browser test (webserver + headless Chromium)
	UPSERT_PIPELINE_SCREENSHOTS=docs $(RUN) pytest upsert_pipeline_tests/test_ui_browser.py

.PHONY: bench
bench: install ## Run the benchmarks (about an hour) and rewrite BENCHMARKS.md and docs/bench_*.png
	$(RUN) python -m bench --out bench/results --markdown BENCHMARKS.md --plots docs

.PHONY: clean
clean: ## Remove the generated lake, landing data and dev instance
	rm -rf data/lake data/landing $(DAGSTER_DEV_HOME)

.PHONY: mutation
mutation: install ## Mutation testing of the merge's core modules ([tool.mutmut]; ~30 min; not in `make test`)
	$(RUN) mutmut run --max-children 2
	$(RUN) mutmut results
