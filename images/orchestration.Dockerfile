# Orchestration image for Init and Summarize: cosmicai without torch (boto3, numpy,
# pyarrow for Summarize's catalog reads, safetensors, pydantic, awslambdaric). Terraform's ImageConfig
# picks the handler per function; the default CMD is Init's. Build args as in
# inference.Dockerfile.
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
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PRECOMPILE=1
# Dependencies first: this layer stays cached while only cosmicai changes.
COPY wheels/ /ctx/wheels/
COPY requirements.txt install.sh prune.sh /ctx/
RUN STRIP="${STRIP}" PRECOMPILE="${PRECOMPILE}" WHEEL_SOURCE="${WHEEL_SOURCE}" PIP_INDEX_URL="${PIP_INDEX_URL}" \
    TORCH_INDEX_URL="${TORCH_INDEX_URL}" sh /ctx/install.sh deps /ctx
COPY app/ /ctx/app/
COPY runtime_modules.py /ctx/
# Only the modules Init and Summarize can import stay (images/runtime_modules.py); the smoke
# import runs on what is left.
RUN PRECOMPILE="${PRECOMPILE}" sh /ctx/install.sh app /ctx \
 && /opt/venv/bin/python /ctx/runtime_modules.py /opt/cosmicai/site cosmicai.handlers.init cosmicai.handlers.summarize \
 && /opt/venv/bin/python -c "import cosmicai.handlers.init, cosmicai.handlers.summarize, pyarrow.parquet, awslambdaric"

FROM ${RUNTIME_IMAGE}
RUN echo 'cosmicai:x:10001:10001:cosmicai:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'cosmicai:x:10001:' >> /etc/group
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/cosmicai/site /opt/cosmicai/site
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    COSMICAI_IMAGE=orchestration
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["/opt/venv/bin/python", "-m", "awslambdaric"]
CMD ["cosmicai.handlers.init.handler"]
