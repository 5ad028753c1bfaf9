#!/usr/bin/env bash
# Builds the offline base images (no registry to pull from): Debian bookworm minbase
# plus python3 (3.11, matching the cp311 wheels), imported as $BASE_TAG (the builder
# stage: apt works there), and $BASE_TAG-runtime, the same tree without apt, dpkg's
# database, perl and glibc's iconv modules (the final stage: nothing there installs
# packages). Cached: an existing tag is kept. Needs root (debootstrap) and an engine.
# (mmdebstrap was tried: no faster here, and its minbase is 40 MB larger.)
#   base.sh [TAG]      (DEBIAN_MIRROR overrides the mirror)
set -euo pipefail

BASE_TAG="${1:-${BASE_TAG:-cosmicai-base:bookworm}}"
RUNTIME_TAG="${BASE_TAG}-runtime"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
log() { echo "base-image: $*" >&2; }
exists() { docker image inspect "$1" >/dev/null 2>&1; }
size() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }

import() {  # import <dir> <tag>
  tar -C "$1" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$2" >/dev/null
}

if exists "$BASE_TAG" && exists "$RUNTIME_TAG"; then
  log "$BASE_TAG and $RUNTIME_TAG exist (cached)"
  exit 0
fi
[[ "$(id -u)" == 0 ]] || { log "building the base images needs root"; exit 2; }
root="$(mktemp -d "${TMPDIR:-/tmp}/cosmicai-base.XXXXXX")"
trap 'rm -rf "$root" "$root.log"' EXIT
started=$SECONDS

if exists "$BASE_TAG"; then
  # Only the runtime variant is missing: start from the existing base's files.
  cid="$(docker create "$BASE_TAG" true)"
  docker export "$cid" | tar -C "$root" -x
  docker rm "$cid" >/dev/null
else
  command -v debootstrap >/dev/null || { log "debootstrap missing: run 'make docker-up' as root or apt-get install debootstrap"; exit 2; }
  log "debootstrap minbase bookworm + python3 into $root"
  debootstrap --variant=minbase --include=python3 bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { tail -n 30 "$root.log" >&2; exit 1; }
  # Nothing needs apt caches, docs, man pages or translations.
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/log/* "$root"/usr/share/common-licenses/*
  find "$root/usr/lib/python3.11" -name '__pycache__' -prune -exec rm -rf {} +
  import "$root" "$BASE_TAG"
  log "imported $BASE_TAG ($(size "$BASE_TAG")) in $((SECONDS - started)) s"
fi

# Runtime variant: package management and what only it uses. Python has its own codecs
# (no iconv modules); no runtime process calls perl, apt or dpkg.
lib="$root/usr/lib/x86_64-linux-gnu"
rm -rf "$root"/usr/bin/perl* "$lib"/perl-base "$lib"/perl "$root"/usr/share/perl* "$lib"/gconv \
  "$root"/usr/bin/apt* "$root"/usr/lib/apt "$lib"/libapt-* "$root"/var/lib/apt "$root"/var/cache/* \
  "$root"/etc/apt "$root"/var/lib/dpkg/info "$root"/usr/share/debconf "$root"/var/cache/debconf \
  "$root"/usr/lib/python3.11/pydoc_data "$root"/usr/lib/python3.11/test
import "$root" "$RUNTIME_TAG"
log "imported $RUNTIME_TAG ($(size "$RUNTIME_TAG")) in $((SECONDS - started)) s"
