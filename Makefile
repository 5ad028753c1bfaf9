# cosmic-ai: `make help` lists the targets. Every target is idempotent.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STATE_DIR ?= .state
PYTEST_ARGS ?=

export PYTHONUNBUFFERED := 1

.PHONY: help setup test test-unit test-local clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## Create .venv (Python 3.11) from requirements/lock.txt with cosmicai installed

$(VENV)/.installed: requirements/lock.txt handlers/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "setup: $(PYTHON) not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c requirements/lock.txt -r requirements/lock.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e 'handlers[cli,infer,report,data,dev]'
	touch $@

test: setup localstack-install asl-tools lint ## Lint, then the whole suite (unit + integration): the CI command
	@$(PY) -m pytest tests --durations=15 $(PYTEST_ARGS) \
	  && echo "make test: PASSED" || { rc=$$?; echo "make test: FAILED (pytest exit $$rc)"; exit $$rc; }

test-unit: setup ## Fast tests, no servers
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-local: setup localstack-install ## Integration tests against the local cloud (LocalStack, Terraform, Docker)
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

clean: ## Remove local state (venvs, LocalStack data, runs); keeps sources
	rm -rf $(VENV) $(VENV)-* $(STATE_DIR) runs build

# Each area keeps its targets in its own file.
-include mk/*.mk
