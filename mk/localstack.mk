# Local cloud: LocalStack in host mode (no Docker, no account) with our Lambda executor and ECR.
# Its venv needs Python >= 3.13; state, logs and pid live in $(LOCALSTACK_STATE) (ignored).

PYTHON_LOCALSTACK ?=
LOCALSTACK_VENV ?= .venv-localstack
LOCALSTACK_STATE ?= $(STATE_DIR)/localstack
LOCALSTACK_EXECUTOR ?= process
LOCALSTACK_LINES ?= 100
# IAM as AWS enforces it (role calls authorized, S3's 403 for absent keys); ENFORCE_IAM=0 only to debug a policy.
ENFORCE_IAM ?= 1
export ENFORCE_IAM
# The account's Lambda concurrency limit the local cloud applies (AWS's default quota).
LAMBDA_ACCOUNT_CONCURRENCY ?= 1000
LS_PY := $(LOCALSTACK_VENV)/bin/python
LAUNCHER = $(LS_PY) -m cosmicai_localstack.launcher --port $(LOCALSTACK_PORT) --state-dir $(LOCALSTACK_STATE)

.PHONY: localstack-install localstack-up localstack-down localstack-status localstack-logs

localstack-install: $(LOCALSTACK_VENV)/.installed ## Create LocalStack's venv (Python >= 3.13, pinned) with our extension

$(LOCALSTACK_VENV)/.installed: requirements/localstack-constraints.txt scripts/localstack_ext/pyproject.toml
	@$(LS_PY) -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null || { \
	  py=$$(PYTHON_LOCALSTACK='$(PYTHON_LOCALSTACK)' scripts/localstack_ext/find-python.sh) && \
	  echo "localstack: creating $(LOCALSTACK_VENV) with $$py" && rm -rf $(LOCALSTACK_VENV) && $$py -m venv $(LOCALSTACK_VENV); }
	$(LS_PY) -m pip install -q --disable-pip-version-check -c requirements/localstack-constraints.txt \
	  'localstack-core[runtime]==2026.3.0'
	$(LS_PY) -m pip install -q --disable-pip-version-check --no-deps -e scripts/localstack_ext
	touch $@

localstack-up: setup localstack-install ## Start the local cloud on LOCALSTACK_PORT (no-op when up); LOCALSTACK_EXECUTOR=process|docker, ENFORCE_IAM=1|0
	@$(LAUNCHER) up --mode $(LOCALSTACK_EXECUTOR) --project-root $(CURDIR) --function-python $(PY) \
	  --enforce-iam $(ENFORCE_IAM) --account-concurrency $(LAMBDA_ACCOUNT_CONCURRENCY)

localstack-down: ## Stop the local cloud this Makefile started (and its function processes)
	@if test -x $(LS_PY); then $(LAUNCHER) down; else echo "localstack not installed"; fi

localstack-status: ## Say whether the local cloud is up, with its services
	@if test -x $(LS_PY); then $(LAUNCHER) status; else echo "localstack not installed"; exit 3; fi

localstack-logs: ## Print the last LOCALSTACK_LINES lines of the local cloud's log
	@if test -x $(LS_PY); then $(LAUNCHER) logs --lines $(LOCALSTACK_LINES); else echo "localstack not installed"; fi
