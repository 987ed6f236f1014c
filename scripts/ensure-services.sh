#!/usr/bin/env bash
# Makes sure PostgreSQL and RabbitMQ run locally, with the database and vhosts Modelyard uses.
# Idempotent, and fast when everything is already up.
set -euo pipefail

PGHOST=${PGHOST:-127.0.0.1}
DB_NAME=${MODELYARD_DB_NAME:-modelyard}
VHOSTS=${MODELYARD_VHOSTS:-"/ modelyard_test"}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL
if ! command -v pg_isready >/dev/null; then apt_install postgresql postgresql-client; fi
if ! pg_isready -q -h "$PGHOST" -p 5432; then
  echo "starting PostgreSQL"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  for _ in $(seq 1 60); do pg_isready -q -h "$PGHOST" -p 5432 && break; sleep 0.5; done
fi
pg_isready -h "$PGHOST" -p 5432 >/dev/null || { echo "PostgreSQL is not reachable" >&2; exit 1; }
if ! psql -h "$PGHOST" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'" | grep -q 1; then
  psql -h "$PGHOST" -U postgres -qc "CREATE DATABASE \"$DB_NAME\""
fi

# RabbitMQ
if ! command -v rabbitmqctl >/dev/null; then apt_install rabbitmq-server; fi
if ! timeout 20 rabbitmqctl -q ping >/dev/null 2>&1; then
  echo "starting RabbitMQ"
  $SUDO rabbitmq-server -detached >/dev/null 2>&1 || true
  rabbitmqctl -q wait --timeout 120 "$(rabbitmqctl eval 'io:format("~s", [node()]).' 2>/dev/null || echo "rabbit@$(hostname -s)")" >/dev/null 2>&1 \
    || for _ in $(seq 1 120); do timeout 20 rabbitmqctl -q ping >/dev/null 2>&1 && break; sleep 1; done
fi
for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 1; done
# --reset-test-vhost: start the test suite from an empty vhost, whatever earlier runs left.
if [ "${1:-}" = "--reset-test-vhost" ]; then
  if rabbitmqctl -q list_vhosts | grep -qx modelyard_test; then
    rabbitmqctl -q delete_vhost modelyard_test
  fi
fi
for vhost in $VHOSTS; do
  rabbitmqctl -q list_vhosts | grep -qx "$vhost" || rabbitmqctl -q add_vhost "$vhost"
  rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*'
done
echo "PostgreSQL and RabbitMQ are ready"
