#!/usr/bin/env bash
# Builds the offline base image (no registry to pull from): Debian bookworm minbase
# plus python3 (3.11, matching the cp311 wheels), imported as $BASE_TAG. Cached: does
# nothing when the tag already exists. Needs root (debootstrap) and a running engine.
#   base.sh [TAG]      (DEBIAN_MIRROR overrides the mirror)
set -euo pipefail

BASE_TAG="${1:-${BASE_TAG:-cosmicai-base:bookworm}}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
log() { echo "base-image: $*" >&2; }

if docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
  log "$BASE_TAG exists (cached)"
  exit 0
fi
command -v debootstrap >/dev/null || { log "debootstrap missing: run 'make docker-up' as root or apt-get install debootstrap"; exit 2; }
[[ "$(id -u)" == 0 ]] || { log "debootstrap needs root"; exit 2; }

root="$(mktemp -d "${TMPDIR:-/tmp}/cosmicai-base.XXXXXX")"
trap 'rm -rf "$root"' EXIT
log "debootstrap minbase bookworm + python3 into $root"
debootstrap --variant=minbase --include=python3 bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
  || { tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# Nothing at run time needs apt caches, docs, man pages or translations.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
  "$root"/var/log/* "$root"/usr/share/common-licenses/*
find "$root/usr/lib/python3.11" -name '__pycache__' -prune -exec rm -rf {} +
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$BASE_TAG" >/dev/null
log "imported $BASE_TAG ($(docker image inspect -f '{{.Size}}' "$BASE_TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
