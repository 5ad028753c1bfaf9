#!/usr/bin/env bash
# Local Docker engine for image builds and the local cloud's container mode.
#   engine.sh up|down|status|env
# `up` reuses a user's engine when DOCKER_HOST or /var/run/docker.sock already
# answers; otherwise it installs docker.io (root only) and starts a private dockerd
# with every root under $STATE (default .state/docker) and a private socket.
# `down` stops only the dockerd this script started (pid file).
set -euo pipefail

STATE="${DOCKER_STATE_DIR:-${STATE_DIR:-.state}/docker}"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
SOCK="$STATE/docker.sock"
PIDFILE="$STATE/dockerd.pid"
LOG="$STATE/dockerd.log"
ENVFILE="$STATE/env"
READY_TIMEOUT="${DOCKER_READY_TIMEOUT:-60}"
APT_PACKAGES=(docker.io debootstrap)

log() { echo "docker-engine: $*" >&2; }

# True when the engine at $1 (a DOCKER_HOST value) answers a ping.
answers() {
  local host="$1" path
  case "$host" in
    unix://*) path="${host#unix://}"
      [[ -S "$path" ]] || return 1
      curl -fsS --max-time 3 --unix-socket "$path" http://localhost/_ping >/dev/null 2>&1 ;;
    tcp://*) curl -fsS --max-time 3 "http://${host#tcp://}/_ping" >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

own_pid_alive() {
  [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

write_env() { printf 'DOCKER_HOST=%s\n' "$1" >"$ENVFILE"; }

# Prints the DOCKER_HOST of an engine that answers now, or fails.
current_host() {
  if [[ -n "${DOCKER_HOST:-}" ]] && answers "$DOCKER_HOST"; then echo "$DOCKER_HOST"; return; fi
  if answers "unix://$SOCK"; then echo "unix://$SOCK"; return; fi
  if answers "unix:///var/run/docker.sock"; then echo "unix:///var/run/docker.sock"; return; fi
  return 1
}

install_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  ((${#missing[@]})) || return 0
  if [[ "$(id -u)" != 0 ]]; then
    log "missing ${missing[*]}: install them (apt-get install ${APT_PACKAGES[*]}) or run 'make docker-up' as root"
    exit 2
  fi
  log "installing ${missing[*]} via apt"
  export DEBIAN_FRONTEND=noninteractive
  # Exit 2 (= no engine can be had here) when apt cannot deliver them.
  apt-get update -qq || { log "apt-get update failed: cannot install ${missing[*]}"; exit 2; }
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { log "apt-get install ${missing[*]} failed"; exit 2; }
}

cmd_up() {
  local host
  if host="$(current_host)"; then
    write_env "$host"
    log "engine answers at $host"
    echo "$host"
    return
  fi
  install_packages
  if [[ "$(id -u)" != 0 ]]; then
    log "no engine answers and starting dockerd needs root; start one and set DOCKER_HOST"
    exit 2
  fi
  mkdir -p "$STATE/data" "$STATE/exec"
  rm -f "$SOCK"
  # No bridge, no iptables: this machine (and CI) has no NAT; builds and containers
  # use host networking.
  setsid dockerd \
    --host "unix://$SOCK" \
    --data-root "$STATE/data" \
    --exec-root "$STATE/exec" \
    --pidfile "$STATE/dockerd.daemon.pid" \
    --iptables=false --ip-masq=false --bridge=none \
    --storage-driver overlay2 \
    >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + READY_TIMEOUT))
  until answers "unix://$SOCK"; do
    if ! own_pid_alive; then log "dockerd exited; last log lines:"; tail -n 20 "$LOG" >&2; exit 1; fi
    if ((SECONDS > deadline)); then log "dockerd not ready after ${READY_TIMEOUT}s (log: $LOG)"; exit 1; fi
    sleep 0.2
  done
  write_env "unix://$SOCK"
  log "started dockerd pid $(cat "$PIDFILE") at unix://$SOCK"
  echo "unix://$SOCK"
}

cmd_down() {
  if ! own_pid_alive; then
    rm -f "$PIDFILE"
    log "no dockerd started by us is running (a user's engine is left alone)"
    return
  fi
  local pid; pid="$(cat "$PIDFILE")"
  kill -TERM "$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then log "dockerd $pid ignored SIGTERM for 30s; sending SIGKILL"; kill -KILL "$pid"; fi
  rm -f "$PIDFILE" "$ENVFILE" "$SOCK"
  log "stopped dockerd pid $pid"
}

cmd_status() {
  local host
  if host="$(current_host)"; then
    local owner="external"
    [[ "$host" == "unix://$SOCK" ]] && own_pid_alive && owner="ours, pid $(cat "$PIDFILE")"
    echo "engine: up at $host ($owner)"
  else
    echo "engine: down"
    return 1
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) current_host ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
