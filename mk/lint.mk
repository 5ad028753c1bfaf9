# Lint gate: style and types of the Python (ruff.toml, mypy.ini), Terraform's canonical format,
# and the state machine against the Amazon States Language. Every check runs even when an
# earlier one fails, so one run lists everything to fix; the target fails if any did.
# asl-validator reads statemachine/pipeline.asl.json as written (its `${...}` placeholders sit
# inside strings, so the file is already JSON); the definition as Terraform renders it is
# validated by tests/unit/test_asl_validator.py.
# Ruff prints one line per finding (`ruff check --fix` and `ruff format` fix most of them).

RUFF := $(VENV)/bin/ruff
MYPY := $(PY) -m mypy

.PHONY: lint

lint: setup asl-tools localstack-install tf-config ## Ruff (lint + format), mypy (strict library), terraform fmt, asl-validator
	@failed=(); \
	step() { local name=$$1; shift; echo "lint: $$name"; "$$@" || failed+=("$$name"); }; \
	step "ruff check" $(RUFF) check --output-format concise .; \
	step "ruff format" $(RUFF) format --check --output-format concise .; \
	step "mypy" $(MYPY); \
	step "mypy (LocalStack extension, in LocalStack's Python)" $(MYPY) --python-executable $(LS_PY) \
	  --python-version 3.13 scripts/localstack_ext/cosmicai_localstack; \
	step "terraform fmt" env $(TF_CHECK_ENV) $(TERRAFORM) -chdir=terraform fmt -check -recursive -diff; \
	step "asl-validator" $(ASL_VALIDATOR) --json-path statemachine/pipeline.asl.json; \
	if (($${#failed[@]})); then echo "make lint: FAILED: $${failed[*]}"; exit 1; fi; \
	echo "make lint: PASSED"
