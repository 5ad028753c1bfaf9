#!/usr/bin/env bash
# Print the path of a Python >= 3.13 for LocalStack's venv (2026.3.0 imports warnings.deprecated, new in 3.13).
# Order: $PYTHON_LOCALSTACK, python3.13/python3.12 on PATH, pyenv's installed versions.
set -euo pipefail

is_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; }

candidates=()
[[ -n "${PYTHON_LOCALSTACK:-}" ]] && candidates+=("$PYTHON_LOCALSTACK")
for name in python3.14 python3.13; do
  command -v "$name" >/dev/null 2>&1 && candidates+=("$(command -v "$name")")
done
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
for dir in "$pyenv_root"/versions/3.1[3-9]*; do
  [[ -x "$dir/bin/python" ]] && candidates+=("$dir/bin/python")
done

for python in "${candidates[@]}"; do
  if is_ok "$python"; then
    "$python" -c 'import sys; print(sys.executable)'
    exit 0
  fi
done
echo "localstack: no Python >= 3.13 found (LocalStack needs it; the project itself uses 3.11)." >&2
echo "  install one (e.g. 'pyenv install 3.13' or 'uv python install 3.13') or set PYTHON_LOCALSTACK=/path/to/python3.13" >&2
exit 1
