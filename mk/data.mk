# Data and training: synthetic SDSS-like data, cleaning/splitting, partitioning, demo weights.
DATA_DIR ?= data
DATA_N ?= 20000
DATA_SEED ?= 0
DATA_FLAGS ?=
DATA_OUT ?= $(DATA_DIR)/synthetic-n$(DATA_N)-s$(DATA_SEED)
PREPARED_OUT ?= $(DATA_OUT)-prepared
TARGET_MB ?= 100
PARTITION_OUT ?= $(DATA_DIR)/partitions/$(notdir $(DATA_OUT))-$(TARGET_MB)mb
# Demo weights: train/validation/test from three independent seeds (see assets/MODEL_CARD.md).
WEIGHTS_DIR ?= $(DATA_DIR)/weights-demo
WEIGHTS_TRAIN_N ?= 30000
WEIGHTS_EVAL_N ?= 4000
WEIGHTS_MINUTES ?= 52
WEIGHTS_ARGS ?= --freeze-vit --threads 1 --probe-epochs 10 --probe-objects 30000 --epochs 6
WEIGHTS_OUT ?= build/weights/astromae-demo.safetensors

.PHONY: data prepare partition weights

data: $(DATA_OUT)/dataset.json ## Generate DATA_N synthetic galaxies (DATA_SEED) into DATA_OUT (DATA_FLAGS=--raw: uncropped 64x64 npz)

$(DATA_OUT)/dataset.json: | setup
	$(PY) -m cosmicai.cli make-dataset --n $(DATA_N) --seed $(DATA_SEED) --out $(DATA_OUT) $(DATA_FLAGS)

prepare: $(PREPARED_OUT)/report.json ## Clean, crop and split DATA_OUT 70/15/15 into PREPARED_OUT (report.json says what was removed)

$(PREPARED_OUT)/report.json: $(DATA_OUT)/dataset.json
	$(PY) -m cosmicai.cli prepare $(DATA_OUT) --out $(PREPARED_OUT)

partition: $(DATA_OUT)/dataset.json ## Re-shard DATA_OUT into ~TARGET_MB MiB shards at PARTITION_OUT (a folder or s3://bucket/prefix)
	$(PY) -m cosmicai.cli partition $(DATA_OUT) --target-mb $(TARGET_MB) --out $(PARTITION_OUT)

weights: $(WEIGHTS_OUT) ## Re-train the demo weights from scratch (make-dataset seeds 1/2/3, cosmicai train, WEIGHTS_MINUTES of CPU)

$(WEIGHTS_DIR)/%/dataset.json: | setup
	$(PY) -m cosmicai.cli make-dataset --quiet --seed $(if $(filter train,$*),1,$(if $(filter val,$*),2,3)) \
	  --n $(if $(filter train,$*),$(WEIGHTS_TRAIN_N),$(WEIGHTS_EVAL_N)) --out $(WEIGHTS_DIR)/$*

$(WEIGHTS_OUT): $(WEIGHTS_DIR)/train/dataset.json $(WEIGHTS_DIR)/val/dataset.json $(WEIGHTS_DIR)/test/dataset.json
	nice -n 10 $(PY) -m cosmicai.cli train --train $(WEIGHTS_DIR)/train --val $(WEIGHTS_DIR)/val \
	  --test $(WEIGHTS_DIR)/test --out $@ --fp16 --max-minutes $(WEIGHTS_MINUTES) $(WEIGHTS_ARGS)
	@echo "weights: wrote $@ and its MODEL_CARD.md; copy both to handlers/cosmicai/assets/ to ship them"
