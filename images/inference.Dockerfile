# Inference image: Python 3.11, torch CPU, OpenVINO (CPU plugin), awslambdaric, cosmicai,
# AstroMAE weights baked in with the engine's files made from them at build time: the
# OpenVINO IR (nothing converts at run time) and the qualification of every precision on
# the builder's CPU (nothing is downloaded at run time). Built by scripts/images/build.py
# from a staged context: wheels/ (dependencies), app/ (the cosmicai wheel),
# requirements.txt, install.sh, prune.sh, runtime_modules.py, weights/ (astromae.safetensors and the
# validation set the qualification is measured on).
# Defaults build from the public Python base and the PyPI / PyTorch CPU indexes; the
# offline build passes BASE_IMAGE=cosmicai-base:bookworm WHEEL_SOURCE=wheelhouse.
ARG BASE_IMAGE=python:3.11-slim
# The final stage's base: the same image by default; offline, a copy without apt, dpkg,
# perl and iconv modules (scripts/images/base.sh), which a Lambda runtime never uses.
ARG RUNTIME_IMAGE=${BASE_IMAGE}

FROM ${BASE_IMAGE} AS builder
ARG STRIP=1
# binutils (strip) in the builder only: the shared libraries of torch, pyarrow and numpy
# ship with their symbol tables (about 120 MB), which nothing at run time reads.
RUN if [ "${STRIP}" = 1 ] && ! command -v strip >/dev/null; then \
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binutils >/dev/null \
      && rm -rf /var/lib/apt/lists/*; \
    fi
ARG WHEEL_SOURCE=index
ARG PIP_INDEX_URL=https://pypi.org/simple
# The PyTorch CPU index; requirements.txt pins torch==<version>+cpu, which only it offers.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PRECOMPILE=1
# Dependencies first: this layer stays cached while only cosmicai changes.
COPY wheels/ /ctx/wheels/
COPY requirements.txt install.sh prune.sh /ctx/
RUN STRIP="${STRIP}" PRECOMPILE="${PRECOMPILE}" WHEEL_SOURCE="${WHEEL_SOURCE}" PIP_INDEX_URL="${PIP_INDEX_URL}" \
    TORCH_INDEX_URL="${TORCH_INDEX_URL}" sh /ctx/install.sh deps /ctx
COPY app/ /ctx/app/
# The smoke import loads the weights as Lambda's INIT phase will (the handler loads them at import).
COPY weights/astromae.safetensors /ctx/weights/astromae.safetensors
RUN PRECOMPILE="${PRECOMPILE}" sh /ctx/install.sh app /ctx \
 && COSMICAI_WEIGHTS=/ctx/weights/astromae.safetensors \
    /opt/venv/bin/python -c "import cosmicai.handlers.infer, torch, openvino, awslambdaric, pyarrow.parquet; \
assert torch.version.cuda is None, 'torch ' + torch.__version__ + ' is a CUDA build: the image needs the CPU one'"
# The engine's files next to the weights, made once from the baked-in weights: the OpenVINO IR
# (astromae.openvino/), the validation set and the qualification of every backend and precision
# on this builder's CPU (astromae.qualification.json; a worker on another CPU class re-checks at
# start-up), and the fp32 and int8 parts compiled for this builder's CPU class at one thread
# (astromae.openvino/compiled/, 17 MB: a worker of that class imports them instead of compiling;
# not `rest`, whose blob carries 42 MB of f32 weights for ~0.1 s of compilation at INIT).
# Then the cosmicai modules the infer handler never imports go (the CLI, the bench, training:
# images/runtime_modules.py; the conversion above was their last use), and an
# OpenVINO worker's smoke import, which must not load torch, runs on what is left.
# `import openvino` starts its converter's usage telemetry (Google Analytics events, a client-id
# file under ~/intel) unless ~/intel/openvino_telemetry says 0: the image opts out, with a HOME
# that holds only that file (Lambda keeps the image's HOME; nothing writes there).
COPY weights/validation.safetensors /ctx/weights/validation.safetensors
COPY runtime_modules.py /ctx/
RUN mkdir -p /opt/cosmicai/weights /opt/cosmicai/home/intel \
 && printf 0 > /opt/cosmicai/home/intel/openvino_telemetry \
 && cp /ctx/weights/astromae.safetensors /opt/cosmicai/weights/astromae.safetensors \
 && export HOME=/opt/cosmicai/home \
 && OMP_NUM_THREADS=1 /opt/venv/bin/python -m cosmicai.cli convert-checkpoint /opt/cosmicai/weights/astromae.safetensors \
    --openvino --qualify --validation /ctx/weights/validation.safetensors \
 && OMP_NUM_THREADS=1 /opt/venv/bin/python -m cosmicai.engine_openvino export-compiled \
    /opt/cosmicai/weights/astromae.safetensors --threads 1 --precisions fp32,int8 --parts embed,blocks,blocks_int8 \
 && /opt/venv/bin/python /ctx/runtime_modules.py /opt/cosmicai/site cosmicai.handlers.infer \
 && COSMICAI_WEIGHTS=/opt/cosmicai/weights/astromae.safetensors COSMICAI_BACKEND=openvino \
    /opt/venv/bin/python -c "import sys, cosmicai.handlers.infer, openvino_telemetry; \
assert 'torch' not in sys.modules, 'the openvino worker imported torch'; \
assert not openvino_telemetry.Telemetry().consent, 'openvino telemetry is on'"

FROM ${RUNTIME_IMAGE}
# Lambda runs images on a read-only filesystem as an arbitrary uid: no writes outside /tmp.
RUN echo 'cosmicai:x:10001:10001:cosmicai:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'cosmicai:x:10001:' >> /etc/group
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/cosmicai/weights /opt/cosmicai/weights
COPY --from=builder /opt/cosmicai/home /opt/cosmicai/home
COPY --from=builder /opt/cosmicai/site /opt/cosmicai/site
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    COSMICAI_WEIGHTS=/opt/cosmicai/weights/astromae.safetensors \
    COSMICAI_IMAGE=inference \
    HOME=/opt/cosmicai/home
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["/opt/venv/bin/python", "-m", "awslambdaric"]
CMD ["cosmicai.handlers.infer.handler"]
