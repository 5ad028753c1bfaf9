#!/bin/sh
# Builder-stage installer shared by both Dockerfiles, in two steps so that an edit of
# cosmicai rebuilds only a small layer (the dependency layers stay cached):
#   install.sh deps <context dir>  /opt/venv with exactly the pinned wheels of
#       requirements.txt (no dependency resolution, so torch's compile-time-only
#       dependencies stay out), pruned, stripped, precompiled; pip removed.
#   install.sh app <context dir>   the cosmicai wheel (pure Python) unpacked into
#       /opt/cosmicai/site, which a .pth file of the venv puts on sys.path.
# WHEEL_SOURCE=wheelhouse: only <context>/wheels (offline). WHEEL_SOURCE=index:
# PIP_INDEX_URL plus TORCH_INDEX_URL (the PyTorch CPU index) as an extra index; the
# requirements pin torch with its +cpu local version, which PyPI's CUDA build does not
# carry, so the extra index cannot lead pip to the CUDA wheels.
# STRIP=1 (default) strips the installed shared libraries (needs binutils' strip).
# PRECOMPILE=1 (default) writes .pyc files: Lambda's file system is read-only, so
# without them every cold start compiles every imported module.
set -eu
step="$1"
ctx="$2"
venv=/opt/venv
app=/opt/cosmicai/site

precompile() {
  [ "${PRECOMPILE:-1}" = 1 ] || return 0
  "$venv/bin/python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$1" >/tmp/compileall.log \
    || echo "compileall: $(grep -c '^\*\*\*' /tmp/compileall.log) files are not Python 3.11 (templates, other versions); kept as source"
}

install_deps() {
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
    index) src="--index-url ${PIP_INDEX_URL:-https://pypi.org/simple} --extra-index-url ${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}" ;;
    *) echo "install.sh: WHEEL_SOURCE must be wheelhouse or index, got '$WHEEL_SOURCE'" >&2; exit 2 ;;
  esac
  # shellcheck disable=SC2086
  $pip install --no-cache-dir --disable-pip-version-check --no-compile --only-binary=:all: \
    --no-deps $src -r "$ctx/requirements.txt"
  sp="$(echo "$venv"/lib/python3.*/site-packages)"
  # The runtime needs neither pip nor setuptools.
  rm -rf "$sp"/pip "$sp"/pip-* "$sp"/setuptools "$sp"/setuptools-* "$sp"/_distutils_hack \
         "$sp"/distutils-precedence.pth "$venv"/bin/pip "$venv"/bin/pip3*
  sh "$ctx/prune.sh" "$venv"
  if [ "${STRIP:-1}" = 1 ]; then
    # Symbol tables and debug info only; the dynamic symbols that loading needs stay.
    # Not the auditwheel-vendored libraries in <pkg>.libs/: patchelf moved their load
    # segments, and strip leaves them unloadable ("not page-aligned").
    find "$venv" -type f \( -name '*.so' -o -name '*.so.*' \) ! -path '*.libs/*' -exec strip --strip-unneeded {} +
  fi
  echo "$app" >"$sp/cosmicai-app.pth"
  precompile "$venv/lib"
}

install_app() {
  whl="$(ls "$ctx"/app/cosmicai-*.whl)"
  mkdir -p "$app"
  # A pure-Python wheel is a zip of the package and its metadata: no pip needed.
  "$venv/bin/python" -m zipfile -e "$whl" "$app"
  # Weights are baked at a fixed path (COSMICAI_WEIGHTS); never twice.
  rm -f "$app"/cosmicai/assets/*.safetensors
  precompile "$app"
}

case "$step" in
  deps) install_deps ;;
  app) install_app ;;
  *) echo "usage: install.sh deps|app <context dir>" >&2; exit 2 ;;
esac
