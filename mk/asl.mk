# The ASL check's tools: asl-validator (npm), pinned by requirements/asl/package-lock.json,
# installed with `npm ci` into $(ASL_TOOLS_DIR) (ignored). tests/unit/test_asl_validator.py
# renders statemachine/pipeline.asl.json with Terraform's templatefile and runs it.

ASL_TOOLS_DIR ?= $(STATE_DIR)/asl-validator
ASL_VALIDATOR := $(ASL_TOOLS_DIR)/node_modules/.bin/asl-validator
# the test finds the validator where this Makefile installed it
export ASL_TOOLS_DIR

.PHONY: asl-tools

asl-tools: $(ASL_TOOLS_DIR)/.installed ## Install the pinned asl-validator (npm ci) that make test runs on the rendered ASL

$(ASL_TOOLS_DIR)/.installed: requirements/asl/package.json requirements/asl/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  echo "asl-tools: node and npm are required (Node.js >= 20; Debian: apt-get install nodejs npm):" \
	       "make test validates the state machine with asl-validator"; exit 1; }
	@mkdir -p $(ASL_TOOLS_DIR)
	cp requirements/asl/package.json requirements/asl/package-lock.json $(ASL_TOOLS_DIR)/
	cd $(ASL_TOOLS_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	$(ASL_VALIDATOR) --version
	touch $@
