# Performance and cost (issue 8): `make bench` -> bench/results.json, REPORT.md, plots; `make costs` -> a run's real bill.
# Both run against the deployed stack of TARGET through `deploy.stack exec` (its outputs arrive as COSMICAI_TF_*).

BENCH_OUT ?= bench
BENCH_ARGS ?=
# BENCH_E2E=0 skips deploying and the end-to-end runs (worker path, cold start and projections only, on LocalStack).
BENCH_E2E ?= 1
BENCH_BUCKET ?= cosmicai-bench
COSTS_SINCE ?= 1h
COSTS_ARGS ?=
RUN_ID ?=
BENCH_LOCAL_ENV = AWS_ENDPOINT_URL=http://$(LOCALSTACK_HOST):$(LOCALSTACK_PORT) AWS_ACCESS_KEY_ID=test \
  AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=$(AWS_REGION)

# The scale rehearsal (issue 15): SCALE_SHARDS tiny shards end to end on TARGET (local by default).
SCALE_SHARDS ?= 10000
# Init alone plans this many shards from a manifest (issue 15: 200,000); 0 skips it.
SCALE_INIT_SHARDS ?= 200000
SCALE_ARGS ?=

.PHONY: bench bench-report costs scale-test

bench: setup $(if $(filter 1,$(BENCH_E2E)),deploy,localstack-up) ## Benchmark (one full run, ~20 min on 2 cores): bench/REPORT.md, results.json, plots
ifeq ($(BENCH_E2E),1)
	$(DEPLOY) exec -- nice -n 10 $(PY) -m cosmicai.cli bench-system --out $(BENCH_OUT) --from-stack-env $(BENCH_ARGS)
else
	$(BENCH_LOCAL_ENV) nice -n 10 $(PY) -m cosmicai.cli bench-system --out $(BENCH_OUT) --bucket $(BENCH_BUCKET) $(BENCH_ARGS)
endif

bench-report: setup ## Re-render bench/REPORT.md and plots from bench/results.json
	$(PY) -m cosmicai.cli bench-system --out $(BENCH_OUT) --report-only

costs: setup ## Real Lambda bill from REPORT lines of the stack's log groups (COSTS_SINCE=1h, RUN_ID=<run> for one run)
	$(DEPLOY) exec -- $(PY) -m cosmicai.cli costs --projection $(BENCH_OUT)/results.json \
	  $(if $(RUN_ID),--run-id $(RUN_ID),--since $(COSTS_SINCE)) $(COSTS_ARGS)

scale-test: setup deploy ## Scale rehearsal: SCALE_SHARDS (10,000) tiny shards end to end, exact accounting -> bench/scale.json + REPORT.md
	$(DEPLOY) exec -- nice -n 10 $(PY) -m cosmicai.cli scale-test --shards $(SCALE_SHARDS) --init-shards $(SCALE_INIT_SHARDS) \
	  --out $(BENCH_OUT) $(SCALE_ARGS)
	$(PY) -m cosmicai.cli bench-system --out $(BENCH_OUT) --report-only
