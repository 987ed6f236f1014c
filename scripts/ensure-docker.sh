#!/usr/bin/env bash
# Make sure a Docker Engine is installed and answering on this machine.
# Idempotent and fast when already done: `docker info` succeeding is the whole check.
set -euo pipefail

log() { echo "ensure-docker: $*" >&2; }

if docker info >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "dockerd missing, installing docker.io"
  export DEBIAN_FRONTEND=noninteractive
  # Only refresh the package lists when apt cannot find the package (an empty or stale cache).
  if ! apt-get install -y docker.io >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y docker.io
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
