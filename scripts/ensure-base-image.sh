#!/usr/bin/env bash
# Build the local base image every Modelyard project runs FROM: modelyard/python-base:bookworm.
# No registry can be pulled from here, so the image is a debootstrapped Debian with python3,
# imported into Docker. Idempotent: nothing happens when the image exists; the debootstrap tree is
# cached under /var/cache/modelyard so a rebuild after `docker rmi` takes seconds.
set -euo pipefail

IMAGE="${MODELYARD_BASE_IMAGE:-modelyard/python-base:bookworm}"
CACHE_DIR="${MODELYARD_CACHE_DIR:-/var/cache/modelyard}"
ROOTFS="$CACHE_DIR/python-base-bookworm"

log() { echo "ensure-base-image: $*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi

if [ ! -f "$ROOTFS/.complete" ]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y debootstrap >/dev/null 2>&1; then
      apt-get update -qq
      apt-get install -y debootstrap
    fi
  fi
  log "debootstrapping bookworm into $ROOTFS (a few minutes, once)"
  mkdir -p "$CACHE_DIR"
  rm -rf "$ROOTFS.tmp"
  debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$ROOTFS.tmp" \
    http://deb.debian.org/debian >"$CACHE_DIR/debootstrap.log" 2>&1 || {
      tail -n 30 "$CACHE_DIR/debootstrap.log" >&2
      exit 1
    }
  # Keep the image small: package caches and docs are never used inside a model container.
  rm -rf "$ROOTFS.tmp"/var/cache/apt/archives/*.deb "$ROOTFS.tmp"/var/lib/apt/lists/* \
    "$ROOTFS.tmp"/usr/share/doc/* "$ROOTFS.tmp"/usr/share/man/*
  rm -rf "$ROOTFS"
  mv "$ROOTFS.tmp" "$ROOTFS"
  touch "$ROOTFS/.complete"
fi

log "importing $ROOTFS as $IMAGE"
tar -C "$ROOTFS" --exclude=./.complete -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PYTHONUNBUFFERED=1' \
  --change 'CMD ["python3"]' \
  - "$IMAGE" >/dev/null
log "$IMAGE ready"
