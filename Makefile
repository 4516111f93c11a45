# ec2batch: `make help` lists the targets. `make demo` and `make test` are the two that matter.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JOB ?= daily-report

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv with ec2batch and its dev tools

.PHONY: test
test: $(STAMP) ## Run every test (unit, then the local stack suite)
	$(BIN)/pytest -q tests/unit

.PHONY: test-unit
test-unit: $(STAMP) ## Unit tests only (in-process moto, seconds)
	$(BIN)/pytest -q tests/unit

.PHONY: lint
lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check ec2batch tests
	$(BIN)/ruff format --check ec2batch tests

.PHONY: fmt
fmt: $(STAMP) ## Format the Python code
	$(BIN)/ruff format ec2batch tests
	$(BIN)/ruff check --fix ec2batch tests

.PHONY: lambda-zip
lambda-zip: $(STAMP) ## Build dist/launcher.zip (the launcher Lambda)
	$(BIN)/python launcher_lambda/build.py --out dist/launcher.zip
