# Modelyard: one venv for the monorepo, each package installed editable.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := libs/common libs/testkit clients/python $(patsubst %/pyproject.toml,%,$(wildcard services/*/pyproject.toml))
TEST_DIRS := $(wildcard libs/common/tests clients/python/tests services/*/tests tests)
MYPY_PACKAGES := -p modelyard_common -p modelyard_testkit -p modelyard_client -p modelyard_cli $(foreach p,$(filter-out %.egg-info,$(wildcard services/*/src/modelyard_*)),-p $(notdir $(p)))
STAMP := $(VENV)/.installed

.PHONY: help install services docker test test-fast lint fmt fuzz dev up down bench chaos clean clients clients-check

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt $(foreach p,$(PACKAGES),-e $(p))
	@touch $(STAMP)

install: $(STAMP) ## create .venv with every package (editable) and the dev tools

services: ## make sure local PostgreSQL and RabbitMQ run (starts them if not)
	@bash scripts/ensure-services.sh

docker: ## make sure a Docker engine runs and the local base image exists
	@if [ -f scripts/ensure-docker.sh ]; then bash scripts/ensure-docker.sh; fi
	@if [ -f scripts/ensure-base-image.sh ]; then bash scripts/ensure-base-image.sh; fi

test: install docker ## run every test against real PostgreSQL, RabbitMQ and Docker
	@bash scripts/ensure-services.sh --reset-test-vhost
	$(BIN)/pytest --durations=15 $(TEST_DIRS) $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

fuzz: install services docker ## schemathesis (--checks all) over every service's live OpenAPI
	$(BIN)/python scripts/fuzz.py

lint: install ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check libs clients services tests
	$(BIN)/ruff format --check libs clients services tests
	$(BIN)/mypy $(MYPY_PACKAGES)
	@# The house plan: layers and import directions, one contract file per package.
	@for f in libs/common/.importlinter services/*/.importlinter; do \
	  [ -f "$$f" ] || continue; echo "lint-imports $$f"; \
	  $(BIN)/lint-imports --no-cache "$$f" || exit 1; done

fmt: install ## format and auto-fix
	$(BIN)/ruff format libs clients services tests
	$(BIN)/ruff check --fix libs clients services tests

dev: install services ## run all services locally with interleaved logs (Ctrl-C stops them)
	@bash scripts/dev.sh

up: ## from nothing: Docker, compose, images, the whole suite; prints its URLs
	@bash scripts/compose.sh up

down: ## stop the compose suite
	@bash scripts/compose.sh down

chaos: install services ## the chaos suite at full size (5,000 gateway requests), tables printed
	MODELYARD_CHAOS_REQUESTS=$${MODELYARD_CHAOS_REQUESTS:-5000} $(BIN)/pytest tests/chaos -s -p no:randomly $(PYTEST_ARGS)

bench: export MODELYARD_ENV = dev
bench: install services docker ## run the benchmarks and print their tables
	@for b in $(wildcard libs/*/bench/bench_*.py services/*/bench/bench_*.py clients/python/bench/bench_*.py); do echo; echo "== $$b"; $(BIN)/python $$b || exit 1; done

clients: install ## regenerate the typed TypeScript clients from the apps' OpenAPI (tsc --strict)
	@bash scripts/clients.sh generate

clients-check: install ## fail when the committed TypeScript clients drift from the apps' OpenAPI
	@bash scripts/clients.sh check

clean: ## remove the venv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .bench
