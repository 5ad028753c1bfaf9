# Deploy: Terraform for the local cloud (default) or AWS, images, invoke, logs.
# State per target lives in $(STATE_DIR)/terraform/<target>/ (ignored).

TARGET ?= local
# The region is resolved by scripts/deploy/regions.py: AWS_REGION, then AWS_DEFAULT_REGION,
# then the profile's region (`aws configure get region`); only the local cloud falls back
# to us-east-1 (TARGET=aws without a region stops). Make passes none of its own: an
# AWS_REGION given here (`make deploy AWS_REGION=eu-west-1`) reaches it as an environment
# variable. Recipes that talk to LocalStack directly (bench) get the local region here.
ifeq ($(TARGET),local)
AWS_REGION ?= $(or $(AWS_DEFAULT_REGION),us-east-1)
endif
LOCALSTACK_HOST ?= 127.0.0.1
LOCALSTACK_PORT ?= 4566
TF_PLUGIN_MIRROR ?= /opt/tf-plugins
TERRAFORM ?= terraform
TFVARS ?=
PAYLOAD ?=
# make invoke: DRY_RUN=1 plans and prices the run without starting it; the merged catalog is
# downloaded only up to CATALOG_DOWNLOAD_LIMIT (none = always), else queried in place in S3.
DRY_RUN ?=
CATALOG_DOWNLOAD_LIMIT ?= 2GB
LOGS_SINCE ?= 10m
LOGS_FUNCTION ?= all
LOGS_FOLLOW ?=
TOOLS_VENV ?= .venv-tools

# The mirror is opt-in: used only when the folder exists (the registry otherwise).
TF_MIRROR_ARG := $(if $(wildcard $(TF_PLUGIN_MIRROR)),--plugin-mirror $(TF_PLUGIN_MIRROR),)
# The executor mode decides whether a local deploy needs real images.
DEPLOY := PYTHONPATH=scripts COSMICAI_EXECUTOR_MODE=$(or $(LOCALSTACK_EXECUTOR),process) $(PY) -m deploy.stack --target $(TARGET) \
  --endpoint=$(if $(filter local,$(TARGET)),http://$(LOCALSTACK_HOST):$(LOCALSTACK_PORT),) \
  --state-dir $(STATE_DIR) --terraform $(TERRAFORM) --make $(MAKE) $(TF_MIRROR_ARG) \
  $(if $(TFVARS),--var-file $(TFVARS),)
# terraform run directly (checks, tests): its own CLI config, never a dangling one.
TF_CHECK_DIR := $(abspath $(STATE_DIR))/terraform/check
TF_CHECK_ENV := TF_DATA_DIR=$(TF_CHECK_DIR)/.terraform TF_IN_AUTOMATION=1 \
  $(if $(wildcard $(TF_PLUGIN_MIRROR)),TF_CLI_CONFIG_FILE=$(abspath $(STATE_DIR))/terraform/cli.tfrc,-u TF_CLI_CONFIG_FILE)

.PHONY: preflight deploy plan destroy invoke resume outputs logs tf-config tf-check scan

# Read-only: every check prints PASS/WARN/FAIL with a fix; exit 1 on any FAIL.
preflight: setup ## Check what `make deploy TARGET=...` needs (credentials, region, Docker, base image, wheels, quotas); show the plan and idle cost. Changes nothing
	$(DEPLOY) preflight --base-image $(BASE_IMAGE) $(if $(RUNTIME_IMAGE),--runtime-image $(RUNTIME_IMAGE)) \
	  --wheel-source $(WHEEL_SOURCE)

deploy: setup $(if $(filter local,$(TARGET)),localstack-up) ## Deploy the stack (TARGET=local|aws): ECR, images, functions, state machine
	$(DEPLOY) deploy

plan: setup ## Show what `make deploy` would change (TARGET=local|aws)
	$(DEPLOY) plan

# The stack's ECR repositories are emptied first (their images are build outputs that
# `make deploy` pushes again); buckets holding data are kept unless force_destroy = true.
destroy: setup ## Remove everything `make deploy` created for TARGET (empties the stack's ECR repositories first)
	$(DEPLOY) destroy

outputs: setup ## Print the Terraform outputs of TARGET as JSON
	$(DEPLOY) output

invoke: setup ## Run the pipeline: make invoke PAYLOAD=<file.json or inline JSON> [DRY_RUN=1] [CATALOG_DOWNLOAD_LIMIT=2GB]
	@test -n '$(PAYLOAD)' || { echo "invoke: set PAYLOAD=<path to a JSON file or inline JSON>"; exit 2; }
	$(DEPLOY) exec -- sh -c 'exec "$$0" -m cosmicai.cli invoke --state-machine-arn "$$COSMICAI_TF_STATE_MACHINE_ARN" --payload "$$1" \
	  --catalog-download-limit "$$2" $(if $(filter-out 0,$(DRY_RUN)),--dry-run)' $(PY) '$(PAYLOAD)' '$(CATALOG_DOWNLOAD_LIMIT)'

resume: setup ## Re-run only the unfinished shards of a run: make resume RUN_ID=<id> [PAYLOAD=...] (same exit codes as invoke)
	@test -n '$(RUN_ID)' || { echo "resume: set RUN_ID=<the run to resume> (its folder under runs/ holds run.json)"; exit 2; }
	$(DEPLOY) exec -- sh -c 'exec "$$0" -m cosmicai.cli invoke --state-machine-arn "$$COSMICAI_TF_STATE_MACHINE_ARN" --resume "$$1" \
	  --catalog-download-limit "$$2" $${3:+--payload "$$3"}' $(PY) '$(RUN_ID)' '$(CATALOG_DOWNLOAD_LIMIT)' '$(PAYLOAD)'

logs: setup ## Print recent function logs (LOGS_SINCE=10m, LOGS_FUNCTION=all|init|infer|summarize|state_machine, LOGS_FOLLOW=1)
	@$(DEPLOY) exec -- $(PY) -m deploy.logs --since $(LOGS_SINCE) --function $(LOGS_FUNCTION) $(if $(LOGS_FOLLOW),--follow)

tf-config: ## Write the Terraform CLI config naming the provider mirror (when it exists)
	@mkdir -p $(TF_CHECK_DIR)
	@PYTHONPATH=scripts $(PY) -c 'import sys; from pathlib import Path; from deploy.terraform_cli import write_mirror_config as w; p = Path(sys.argv[1]); p.is_dir() and w(Path(sys.argv[2]), p)' $(TF_PLUGIN_MIRROR) $(STATE_DIR)/terraform/cli.tfrc

tf-check: setup tf-config ## terraform fmt -check, init, validate and test (mock provider, offline with the mirror)
	env $(TF_CHECK_ENV) $(TERRAFORM) -chdir=terraform fmt -check -recursive -diff
	env $(TF_CHECK_ENV) $(TERRAFORM) -chdir=terraform init -input=false -backend=false -no-color >/dev/null
	env $(TF_CHECK_ENV) $(TERRAFORM) -chdir=terraform validate -no-color
	env $(TF_CHECK_ENV) $(TERRAFORM) -chdir=terraform test -no-color

$(TOOLS_VENV)/.installed: requirements/tools.txt
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements/tools.txt
	touch $@

# terraform/tests holds `terraform test` files (mock providers), not infrastructure.
scan: $(TOOLS_VENV)/.installed ## Checkov over terraform/ (offline, zero failed checks required)
	$(TOOLS_VENV)/bin/checkov -d terraform --framework terraform --skip-path terraform/tests \
	  --skip-download --quiet --compact
