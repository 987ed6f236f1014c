#!/usr/bin/env bash
# Make sure a Docker Engine is installed and answering on this machine.
# Idempotent and fast when already done: `docker info` succeeding is the whole check.
set -euo pipefail

log() { echo "ensure-docker: $*" >&2; }

have_compose() { docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; }

if docker info >/dev/null 2>&1 && have_compose; then
  exit 0
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
have_compose || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Only refresh the package lists when apt cannot find the packages (an empty or stale cache).
  if ! apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

if ! docker info >/dev/null 2>&1; then
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "starting dockerd (log: /var/log/dockerd.log)"
    # setsid + nohup: the daemon outlives the shell (and the CI step) that started it.
    setsid nohup dockerd --storage-driver=overlay2 >>/var/log/dockerd.log 2>&1 </dev/null &
  fi
fi

for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then
    log "docker is up"
    exit 0
  fi
  sleep 0.5
done
log "docker did not come up within 60 s; see /var/log/dockerd.log"
tail -n 30 /var/log/dockerd.log >&2 || true
exit 1
