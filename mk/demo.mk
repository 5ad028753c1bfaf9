# The demo: set up, start the local cloud, deploy, make sample data, invoke, report.
DEMO_OBJECTS ?= 4096
DEMO_SEED ?= 7
DEMO_SHARD_MB ?= 10
DEMO_ARGS ?=

.PHONY: demo

demo: deploy ## Everything, end to end, on the local cloud (DEMO_OBJECTS=4096 DEMO_SHARD_MB=10)
	$(DEPLOY) exec -- $(PY) scripts/demo/run.py --objects $(DEMO_OBJECTS) --seed $(DEMO_SEED) \
	  --shard-mb $(DEMO_SHARD_MB) $(DEMO_ARGS)
