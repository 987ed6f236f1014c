#!/usr/bin/env bash
# Seed local stand-ins for the public images deploy/compose.yaml names, where they are absent.
#
# No image registry is reachable here, so `python:3.11-slim-bookworm`, `postgres:16` and
# `rabbitmq:3.13` are built from Debian bookworm packages instead (debootstrap + docker import +
# docker build). Each stand-in honours the environment the official image documents
# (POSTGRES_USER/PASSWORD/DB, PGDATA; RABBITMQ_DEFAULT_USER/PASS) and ships the tools the compose
# healthchecks call (pg_isready, rabbitmq-diagnostics). An image that already exists, official or
# stand-in, is never touched. The PostgreSQL and RabbitMQ stand-ins carry the label
# org.modelyard.standin=true; the Python one does not, as every image built FROM it would inherit
# the label.
#
# Idempotent and quiet when everything exists. The debootstrap tree is cached under
# /var/cache/modelyard; when the device agent's base image (modelyard/python-base:bookworm, a
# debootstrapped bookworm with python3) exists it is the starting point and no debootstrap runs.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_IMAGE="${MODELYARD_STANDIN_PYTHON_IMAGE:-python:3.11-slim-bookworm}"
POSTGRES_IMAGE="${MODELYARD_STANDIN_POSTGRES_IMAGE:-postgres:16}"
RABBITMQ_IMAGE="${MODELYARD_STANDIN_RABBITMQ_IMAGE:-rabbitmq:3.13}"
# The compose suite's broker serves the management API (the deployer manages device logins).
RABBITMQ_MANAGEMENT_IMAGE="${MODELYARD_STANDIN_RABBITMQ_MANAGEMENT_IMAGE:-rabbitmq:3.13-management}"
AGENT_BASE_IMAGE="${MODELYARD_BASE_IMAGE:-modelyard/python-base:bookworm}"
ROOTFS_IMAGE="modelyard/standin-rootfs:bookworm"
CACHE_DIR="${MODELYARD_CACHE_DIR:-/var/cache/modelyard}"
ROOTFS="$CACHE_DIR/standin-rootfs-bookworm"
MIRROR="${MODELYARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
HOST_CA_BUNDLE="${MODELYARD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

log() { echo "standin-images: $*" >&2; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

if have_image "$PYTHON_IMAGE" && have_image "$POSTGRES_IMAGE" && have_image "$RABBITMQ_IMAGE" \
  && have_image "$RABBITMQ_MANAGEMENT_IMAGE"; then
  exit 0
fi

if [ -f scripts/ensure-docker.sh ]; then bash scripts/ensure-docker.sh; fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Runs `docker build` quietly; shows the build log only when it fails.
build() {
  local tag="$1" dir="$2"
  shift 2
  log "building stand-in $tag"
  if ! docker build "$@" -t "$tag" "$dir" >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log" >&2
    log "building $tag failed"
    exit 1
  fi
}

# The starting point: a bookworm root filesystem with python3 and ca-certificates.
base_image() {
  if have_image "$AGENT_BASE_IMAGE"; then
    echo "$AGENT_BASE_IMAGE"
    return
  fi
  if ! have_image "$ROOTFS_IMAGE"; then
    if [ ! -f "$ROOTFS/.complete" ]; then
      command -v debootstrap >/dev/null || {
        log "debootstrap is missing (apt-get install debootstrap)"
        exit 1
      }
      log "debootstrapping bookworm into $ROOTFS (a few minutes, once)"
      mkdir -p "$CACHE_DIR"
      rm -rf "$ROOTFS.tmp"
      debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$ROOTFS.tmp" \
        "$MIRROR" >"$CACHE_DIR/standin-debootstrap.log" 2>&1 || {
        tail -n 30 "$CACHE_DIR/standin-debootstrap.log" >&2
        exit 1
      }
      rm -rf "$ROOTFS.tmp"/var/cache/apt/archives/*.deb "$ROOTFS.tmp"/var/lib/apt/lists/*
      rm -rf "$ROOTFS"
      mv "$ROOTFS.tmp" "$ROOTFS"
      touch "$ROOTFS/.complete"
    fi
    tar -C "$ROOTFS" --exclude=./.complete -c . | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["python3"]' \
      - "$ROOTFS_IMAGE" >/dev/null
  fi
  echo "$ROOTFS_IMAGE"
}

BASE="$(base_image)"

# Builds TAG from DIR: Debian's PACKAGES on the base image (EXTRA_CLEAN: more paths removed with
# the apt lists), started by DIR's docker-entrypoint.sh; the rest of the Dockerfile comes on stdin.
build_entrypoint_standin() {
  local tag="$1" dir="$2" packages="$3" extra_clean="${4:-}"
  {
    cat <<EOF
FROM $BASE
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      $packages >/dev/null \\
 && rm -rf /var/lib/apt/lists/*$extra_clean
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
EOF
    cat
  } >"$dir/Dockerfile"
  build "$tag" "$dir" --label org.modelyard.standin=true
}

# --- python:3.11-slim-bookworm ------------------------------------------------------------------
# Debian's python3 is 3.11. `python` and `pip` exist as in the official image, pip may install
# system-wide as it can there, and pip trusts the host's CA bundle (PyPI is reachable from a build
# only through it).
if ! have_image "$PYTHON_IMAGE"; then
  mkdir -p "$WORK/python"
  cp "$HOST_CA_BUNDLE" "$WORK/python/ca-certificates.crt"
  cat >"$WORK/python/Dockerfile" <<EOF
FROM $BASE
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      python3 python3-venv python3-pip ca-certificates >/dev/null \\
 && rm -rf /var/lib/apt/lists/* /usr/lib/python3.11/EXTERNALLY-MANAGED \\
 && ln -sf /usr/bin/python3 /usr/local/bin/python \\
 && ln -sf /usr/bin/pip3 /usr/local/bin/pip
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV LANG=C.UTF-8 PYTHONUNBUFFERED=1 \\
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \\
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
EOF
  build "$PYTHON_IMAGE" "$WORK/python"
fi

# --- postgres:16 --------------------------------------------------------------------------------
# Debian bookworm ships PostgreSQL 15; the services need nothing newer.
if ! have_image "$POSTGRES_IMAGE"; then
  mkdir -p "$WORK/postgres"
  cat >"$WORK/postgres/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# Stand-in for the official postgres image's entrypoint: first start initialises $PGDATA with
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, then PostgreSQL runs in the foreground.
set -eu
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
if [ "${1:-postgres}" != "postgres" ]; then exec "$@"; fi

mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != "trust" ]; then
    echo "postgres: POSTGRES_PASSWORD is not set (or set POSTGRES_HOST_AUTH_METHOD=trust)" >&2
    exit 1
  fi
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:-postgres}" >"$pwfile"
  chown postgres "$pwfile"
  as_postgres initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all ${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ "$POSTGRES_DB" != "postgres" ]; then
    as_postgres psql -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \
      -c "CREATE DATABASE \"$POSTGRES_DB\""
  fi
  as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres: initialised $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA"
EOF
  build_entrypoint_standin "$POSTGRES_IMAGE" "$WORK/postgres" "postgresql-15 postgresql-client-15" <<EOF
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
EOF
fi

# --- rabbitmq:3.13 ------------------------------------------------------------------------------
# Debian bookworm ships RabbitMQ 3.10; the AMQP 0-9-1 features the services use (quorum queues,
# dead-lettering, delivery limits, publisher confirms) are all there.
if ! have_image "$RABBITMQ_IMAGE"; then
  mkdir -p "$WORK/rabbitmq"
  cat >"$WORK/rabbitmq/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# Stand-in for the official rabbitmq image's entrypoint: RABBITMQ_DEFAULT_USER / _PASS become the
# broker's default user (allowed from any host), then the broker runs in the foreground. Debian's
# wrappers switch to the rabbitmq user themselves, so the CLI tools share the server's cookie.
set -eu
if [ "${1:-rabbitmq-server}" != "rabbitmq-server" ]; then exec "$@"; fi
cat >/etc/rabbitmq/rabbitmq.conf <<CONF
listeners.tcp.default = 5672
loopback_users = none
default_user = ${RABBITMQ_DEFAULT_USER:-guest}
default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}
default_vhost = ${RABBITMQ_DEFAULT_VHOST:-/}
log.console = true
log.console.level = warning
log.file = false
CONF
mkdir -p /var/lib/rabbitmq
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
exec rabbitmq-server
EOF
  build_entrypoint_standin "$RABBITMQ_IMAGE" "$WORK/rabbitmq" rabbitmq-server \
    " /var/lib/rabbitmq/mnesia" <<EOF
ENV LANG=C.UTF-8
VOLUME /var/lib/rabbitmq
EXPOSE 5672
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["rabbitmq-server"]
EOF
fi

# --- rabbitmq:3.13-management: the same broker with its management plugin on --------------------
if ! have_image "$RABBITMQ_MANAGEMENT_IMAGE"; then
  mkdir -p "$WORK/rabbitmq-management"
  printf 'FROM %s\nRUN rabbitmq-plugins enable --offline rabbitmq_management\nEXPOSE 15672\n' \
    "$RABBITMQ_IMAGE" >"$WORK/rabbitmq-management/Dockerfile"
  build "$RABBITMQ_MANAGEMENT_IMAGE" "$WORK/rabbitmq-management" --label org.modelyard.standin=true
fi
