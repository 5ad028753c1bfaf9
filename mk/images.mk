# Docker engine and container images (scripts/docker, scripts/images, images/).
DOCKER_STATE ?= $(STATE_DIR)/docker
# The builder's base. Locally our offline debootstrap base (needs root and debootstrap,
# no registry); for TARGET=aws the public python:3.11-slim, which any laptop with Docker
# can pull (and which exists for both linux/amd64 and linux/arm64). Override either way.
BASE_IMAGE ?= $(if $(filter aws,$(TARGET)),python:3.11-slim,cosmicai-base:bookworm)
# Final stage's base; empty: $(BASE_IMAGE)-runtime for our base, else $(BASE_IMAGE).
RUNTIME_IMAGE ?=
WHEEL_SOURCE ?= wheelhouse
# The functions' instruction set (Terraform's `architecture`): every build runs with the
# matching docker --platform (x86_64 -> linux/amd64, arm64 -> linux/arm64) whatever this
# machine is. `make deploy` passes the value of the tfvars.
ARCHITECTURE ?= x86_64
# Where torch's CPU build comes from (the pins say torch==<version>+cpu, so never CUDA);
# empty: only pip's own configuration (find-links, a local mirror).
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
export TORCH_INDEX_URL
IMAGES ?= inference,orchestration
IMAGES_PUSH ?=
IMAGES_ARGS ?=
# Our tools talk to the engine `docker-up` found or started (a user's DOCKER_HOST wins).
DOCKER_ENV = $(if $(DOCKER_HOST),,$(if $(wildcard $(DOCKER_STATE)/env),export $$(cat $(DOCKER_STATE)/env);))
# Every recipe (LocalStack's docker executor mode included) sees the recorded engine.
ifeq ($(origin DOCKER_HOST),undefined)
ifneq ($(wildcard $(DOCKER_STATE)/env),)
export DOCKER_HOST := $(shell sed -n 's/^DOCKER_HOST=//p' $(DOCKER_STATE)/env)
endif
endif

.PHONY: docker-up docker-down docker-status images-base images images-prune

docker-up: ## Start a private Docker engine under .state/docker (installs docker.io+debootstrap as root); reuses a running one
	@DOCKER_STATE_DIR=$(DOCKER_STATE) scripts/docker/engine.sh up >/dev/null

docker-down: ## Stop the Docker engine that docker-up started (never a user's own engine)
	@DOCKER_STATE_DIR=$(DOCKER_STATE) scripts/docker/engine.sh down

docker-status: ## Say whether a Docker engine answers, and whose it is
	@DOCKER_STATE_DIR=$(DOCKER_STATE) scripts/docker/engine.sh status

images-base: docker-up ## Build the offline base images (debootstrap bookworm + python3, and its -runtime slim copy) when absent
	@$(if $(filter cosmicai-base:%,$(BASE_IMAGE)),$(DOCKER_ENV) scripts/images/base.sh $(BASE_IMAGE),echo "images-base: using $(BASE_IMAGE) as is")

# The base image (debootstrap) and the wheel downloads both wait on the network: run them side by side.
images: setup docker-up ## Build the inference and orchestration images for ARCHITECTURE (digest tags, size budgets) -> build/images.json; IMAGES_PUSH=<ecr registry> pushes
	@$(DOCKER_ENV) { $(MAKE) -s images-base & base=$$!; \
	  $(PY) scripts/images/build.py --prefetch --images $(IMAGES) --architecture $(ARCHITECTURE) \
	    --base-image $(BASE_IMAGE) $(if $(RUNTIME_IMAGE),--runtime-image $(RUNTIME_IMAGE)) --wheel-source $(WHEEL_SOURCE); wheels=$$?; \
	  wait $$base && test $$wheels = 0; }
	@$(DOCKER_ENV) $(PY) scripts/images/build.py --images $(IMAGES) --architecture $(ARCHITECTURE) --base-image $(BASE_IMAGE) \
	  $(if $(RUNTIME_IMAGE),--runtime-image $(RUNTIME_IMAGE)) \
	  --wheel-source $(WHEEL_SOURCE) $(if $(IMAGES_PUSH),--push $(IMAGES_PUSH)) $(IMAGES_ARGS)

images-prune: docker-up ## Remove stale local cosmicai-* tags (not :latest, not build/images.json's) and build layers over an hour old
	@$(DOCKER_ENV) $(PY) scripts/images/build.py --prune
