#!/bin/sh
# Builder-stage installer shared by both Dockerfiles: creates /opt/venv and installs
# exactly the pinned wheels of requirements.txt (no dependency resolution, so torch's
# compile-time-only dependencies stay out) plus the cosmicai wheel.
#   install.sh <context dir>
# WHEEL_SOURCE=wheelhouse: only <context>/wheels (offline). WHEEL_SOURCE=index:
# PIP_INDEX_URL plus TORCH_INDEX_URL (the PyTorch CPU index) as an extra index.
# STRIP=1 (default) strips the installed shared libraries (needs binutils' strip).
set -eu
ctx="$1"
venv=/opt/venv
python3 -m venv "$venv" 2>/dev/null || python3 -m venv --without-pip "$venv"

if [ -x "$venv/bin/pip" ]; then
  pip="$venv/bin/python -m pip"
else
  # Debian's python3 has no ensurepip: run pip straight from its wheel.
  pipwhl="$(ls "$ctx"/wheels/pip-*.whl 2>/dev/null | head -n 1)"
  [ -n "$pipwhl" ] || { echo "install.sh: no pip in the base image and no pip wheel in the context" >&2; exit 1; }
  pip="$venv/bin/python $pipwhl/pip"
fi

case "${WHEEL_SOURCE:-index}" in
  wheelhouse) src="--no-index --find-links $ctx/wheels" ;;
  index) src="--index-url ${PIP_INDEX_URL:-https://pypi.org/simple} --extra-index-url ${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu} --find-links $ctx/wheels" ;;
  *) echo "install.sh: WHEEL_SOURCE must be wheelhouse or index, got '$WHEEL_SOURCE'" >&2; exit 2 ;;
esac

# shellcheck disable=SC2086
$pip install --no-cache-dir --disable-pip-version-check --no-compile --only-binary=:all: \
  --no-deps $src -r "$ctx/requirements.txt" "$ctx"/wheels/cosmicai-*.whl

# Weights are baked at a fixed path (COSMICAI_WEIGHTS); never twice.
rm -f "$venv"/lib/python3.*/site-packages/cosmicai/assets/*.safetensors
# The runtime needs neither pip nor setuptools.
rm -rf "$venv"/lib/python3.*/site-packages/pip "$venv"/lib/python3.*/site-packages/pip-* \
       "$venv"/lib/python3.*/site-packages/setuptools "$venv"/lib/python3.*/site-packages/setuptools-* \
       "$venv"/lib/python3.*/site-packages/_distutils_hack "$venv"/lib/python3.*/site-packages/distutils-precedence.pth \
       "$venv"/bin/pip "$venv"/bin/pip3*
sh "$ctx/prune.sh" "$venv"
if [ "${STRIP:-1}" = 1 ]; then
  # Symbol tables and debug info only; the dynamic symbols that loading needs stay.
  # Not the auditwheel-vendored libraries in <pkg>.libs/: patchelf moved their load
  # segments, and strip leaves them unloadable ("not page-aligned").
  find "$venv" -type f \( -name '*.so' -o -name '*.so.*' \) ! -path '*.libs/*' -exec strip --strip-unneeded {} +
fi
