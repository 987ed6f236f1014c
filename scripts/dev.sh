#!/usr/bin/env bash
# `make dev`: the four services as local processes against the local PostgreSQL and RabbitMQ
# (`make services` starts them) and the local Docker engine, with interleaved logs prefixed by
# the service's name. Ctrl-C stops them all; so does any one of them exiting.
#
# Each database service gets its schema migrated first. The agent needs a device registration;
# unless MODELYARD_AGENT_DEVICE_ID and MODELYARD_AGENT_TOKEN are set, a dev device is registered
# through the deployer's API (POST /v1/devices, workspace $MODELYARD_DEV_WORKSPACE, default `dev`)
# and kept in .data/dev/agent/registration.env for the next run.
#
# Ports: MODELYARD_{GATEWAY,REGISTRY,DEPLOYER,AGENT}_PORT (8000..8003). A person's token for the
# APIs: .venv/bin/modelyard dev-token --sub me --role admin --workspace dev
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="$ROOT/.venv/bin"
[ -x "$BIN/modelyard-registry" ] || { echo "dev: run 'make install' first" >&2; exit 1; }

export MODELYARD_LOG_JSON="${MODELYARD_LOG_JSON:-false}"
GATEWAY_PORT="${MODELYARD_GATEWAY_PORT:-8000}"
REGISTRY_PORT="${MODELYARD_REGISTRY_PORT:-8001}"
DEPLOYER_PORT="${MODELYARD_DEPLOYER_PORT:-8002}"
AGENT_PORT="${MODELYARD_AGENT_PORT:-8003}"
export MODELYARD_REGISTRY_URL="${MODELYARD_REGISTRY_URL:-http://127.0.0.1:$REGISTRY_PORT}"
export MODELYARD_DEPLOYER_URL="${MODELYARD_DEPLOYER_URL:-http://127.0.0.1:$DEPLOYER_PORT}"
export MODELYARD_DEPLOYER_ARTIFACT_DIR="${MODELYARD_DEPLOYER_ARTIFACT_DIR:-$ROOT/.data/dev/deployer/artifacts}"
# Absolute: the agent mounts project directories from it into model containers.
export MODELYARD_AGENT_DATA_DIR="${MODELYARD_AGENT_DATA_DIR:-$ROOT/.data/dev/agent}"
WORKSPACE="${MODELYARD_DEV_WORKSPACE:-dev}"

if [ -t 1 ]; then
  declare -A COLOUR=([registry]=36 [deployer]=35 [gateway]=33 [agent]=32)
else
  declare -A COLOUR=()
fi

pids=()
stop_all() {
  trap - INT TERM EXIT
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap 'stop_all; exit 130' INT TERM
trap stop_all EXIT

# Starts `$@` in the background with every output line prefixed by the service name.
run() {
  local name="$1"; shift
  local prefix
  if [ -n "${COLOUR[$name]:-}" ]; then
    prefix=$(printf '\033[%sm%-8s|\033[0m ' "${COLOUR[$name]}" "$name")
  else
    prefix=$(printf '%-8s| ' "$name")
  fi
  "$@" > >(while IFS= read -r line; do printf '%s%s\n' "$prefix" "$line"; done) 2>&1 &
  pids+=("$!")
}

wait_healthy() {
  local name="$1" url="$2"
  for _ in $(seq 1 120); do
    if "$BIN/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" \
      "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "dev: $name did not answer $url within 60 s" >&2
  exit 1
}

migrate_log="$(mktemp)"
for service in registry deployer gateway; do
  "$BIN/modelyard-$service" migrate >"$migrate_log" 2>&1 || {
    cat "$migrate_log" >&2
    rm -f "$migrate_log"
    echo "dev: migrating $service failed" >&2
    exit 1
  }
done
rm -f "$migrate_log"

# The deployer makes one broker login per device through RabbitMQ's management API.
if ! curl -sf -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1; then
  rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1 || true
fi
run registry "$BIN/modelyard-registry" serve --port "$REGISTRY_PORT"
run deployer "$BIN/modelyard-deployer" serve --port "$DEPLOYER_PORT"
run gateway "$BIN/modelyard-gateway" serve --port "$GATEWAY_PORT"
wait_healthy deployer "$MODELYARD_DEPLOYER_URL/healthz"

if [ -z "${MODELYARD_AGENT_DEVICE_ID:-}" ] || [ -z "${MODELYARD_AGENT_TOKEN:-}" ]; then
  mkdir -p "$MODELYARD_AGENT_DATA_DIR"
  TOKEN="$("$BIN/modelyard" dev-token --sub dev --role admin --workspace "$WORKSPACE")"
  "$BIN/python" - "$MODELYARD_DEPLOYER_URL" "$TOKEN" "$MODELYARD_AGENT_DATA_DIR" <<'EOF'
# Registers the dev device once; re-registers when the deployer no longer knows it.
import json, os, pathlib, socket, sys, urllib.error, urllib.request

deployer, token, data_dir = sys.argv[1:4]
saved = pathlib.Path(data_dir) / "registration.env"
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(deployer + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


if saved.exists():
    known = dict(line.split("=", 1) for line in saved.read_text().split())
    try:
        call("GET", "/v1/devices/" + known["MODELYARD_AGENT_DEVICE_ID"])
        sys.exit(0)
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
device = call(
    "POST",
    "/v1/devices",
    {"name": f"dev-{socket.gethostname()}", "labels": {"dev": "true"}, "advertise_host": "127.0.0.1"},
)
saved.write_text(
    f"MODELYARD_AGENT_DEVICE_ID={device['id']}\nMODELYARD_AGENT_TOKEN={device['token']}\n"
)
saved.chmod(0o600)
print(f"dev: registered dev device {device['id']}", file=sys.stderr)
EOF
  set -a
  # shellcheck disable=SC1091
  . "$MODELYARD_AGENT_DATA_DIR/registration.env"
  set +a
fi
export MODELYARD_AGENT_PORT="$AGENT_PORT"
# The agent logs in to RabbitMQ as its device (the deployer made that login): no platform login.
export MODELYARD_AGENT_AMQP_URL="${MODELYARD_AGENT_AMQP_URL:-$(printf '%s' "${MODELYARD_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}" | sed -E 's#//[^@/]*@#//#')}"
run agent "$BIN/modelyard-agent" serve --port "$AGENT_PORT"

echo "dev: gateway :$GATEWAY_PORT  registry :$REGISTRY_PORT  deployer :$DEPLOYER_PORT  agent :$AGENT_PORT (Ctrl-C stops)" >&2
# The first service to exit ends the session (and stops the others).
set +e
wait -n "${pids[@]}"
status=$?
echo "dev: a service exited (status $status); stopping the others" >&2
exit "$status"
