#!/usr/bin/env bash
# The compose suite (deploy/compose.yaml): `up`, `down [-v]`, `smoke`.
#
#   up      from nothing: make sure Docker runs and compose is installed (Debian's docker-compose
#           through apt-get when neither `docker compose` nor `docker-compose` works), build the
#           local base image and the stand-ins for the images compose names (no image registry
#           is reachable here), build the four service images, start everything, wait until
#           every healthcheck passes and print the URLs
#   down    stop and remove the containers (and the model containers the agent started);
#           with -v also the named volumes and the agent's data directory
#   smoke   up, walk a short story against the published ports (tests/smoke_story.py), down -v
#   story   only the story, against a suite that is up (the tests share one `up` this way)
#   tools   only the first steps of `up`: Docker running and a compose that works
#   prepare the steps of `up` before the build: tools, the base image and the stand-in images
#
# Works with `docker compose` (v2) or `docker-compose` (1.29). Each step of `up` says on stderr
# what it does and how long it took (`compose: ...`); on failure it shows what failed and the
# logs of the services concerned. Settings: everything deploy/compose.yaml reads, plus
# MODELYARD_COMPOSE_PROJECT (default `modelyard`) and MODELYARD_COMPOSE_TIMEOUT_S (default 600).
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT="${MODELYARD_COMPOSE_PROJECT:-modelyard}"
TIMEOUT_S="${MODELYARD_COMPOSE_TIMEOUT_S:-600}"
COMPOSE_FILE="deploy/compose.yaml"
DATA_DIR="${MODELYARD_AGENT_DATA_DIR:-/var/lib/modelyard-agent}"
BIND="${MODELYARD_BIND:-127.0.0.1}"
[ "$BIND" = 0.0.0.0 ] && BIND=127.0.0.1
# Where Debian's docker-compose package puts the command (found there even when PATH lacks it).
DEBIAN_COMPOSE=/usr/bin/docker-compose

log() { echo "compose: $*" >&2; }
die() { log "$*"; exit 1; }

# `step WHAT COMMAND...`: says what it does, runs it, says how long it took (or that it failed).
step() {
  local what="$1" started=$SECONDS
  shift
  log "$what ..."
  if ! "$@"; then
    die "$what: failed after $((SECONDS - started))s"
  fi
  log "  done in $((SECONDS - started))s"
}

COMPOSE_CMD=()
# Sets COMPOSE_CMD to the compose on PATH that answers `version`; returns 1 when there is none.
find_compose() {
  if docker compose version >/dev/null 2>&1; then
    COMPOSE_CMD=(docker compose)
  elif docker-compose version >/dev/null 2>&1; then
    COMPOSE_CMD=(docker-compose)
  else
    return 1
  fi
}

# Installs Debian's docker-compose (refreshing the package lists only when apt cannot find it).
install_compose() {
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq docker-compose >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq docker-compose >/dev/null
  fi
}

ensure_compose() {
  find_compose && return 0
  step "neither 'docker compose' nor 'docker-compose' works: installing docker-compose (apt-get)" \
    install_compose
  find_compose && return 0
  # Installed where Debian puts it, which this PATH may not reach.
  if "$DEBIAN_COMPOSE" version >/dev/null 2>&1; then
    COMPOSE_CMD=("$DEBIAN_COMPOSE")
  else
    die "docker-compose was installed but does not run: try '$DEBIAN_COMPOSE version'"
  fi
}

compose() { "${COMPOSE_CMD[@]}" -p "$PROJECT" -f "$COMPOSE_FILE" "$@"; }

# The agent needs the Docker socket's group inside its container (known once Docker runs).
GIVEN_DOCKER_GID="${DOCKER_GID:-}"
docker_gid() {
  DOCKER_GID="${GIVEN_DOCKER_GID:-$(stat -c %g "${DOCKER_SOCKET:-/var/run/docker.sock}" 2>/dev/null || echo 0)}"
  export DOCKER_GID
}
docker_gid

ensure_docker() {
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  step "starting Docker (installing it first if missing)" bash scripts/ensure-docker.sh
}

tools() {
  ensure_docker
  docker_gid
  ensure_compose
  log "using ${COMPOSE_CMD[*]} ($("${COMPOSE_CMD[@]}" version --short 2>/dev/null || echo "version unknown"))"
}

prepare() {
  tools
  local base="${MODELYARD_BASE_IMAGE:-modelyard/python-base:bookworm}"
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    # The image every model runs FROM, and the starting point of the stand-ins below.
    step "building the base image $base (debootstrap, a few minutes the first time)" \
      bash scripts/ensure-base-image.sh
  fi
  local image missing=()
  for image in "${MODELYARD_STANDIN_PYTHON_IMAGE:-python:3.11-slim-bookworm}" \
    "${MODELYARD_STANDIN_POSTGRES_IMAGE:-postgres:16}" \
    "${MODELYARD_STANDIN_RABBITMQ_IMAGE:-rabbitmq:3.13}" \
    "${MODELYARD_STANDIN_RABBITMQ_MANAGEMENT_IMAGE:-rabbitmq:3.13-management}"; do
    docker image inspect "$image" >/dev/null 2>&1 || missing+=("$image")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    step "building local stand-ins for ${missing[*]} (Debian packages; once)" \
      bash scripts/standin-images.sh
  else
    log "base image and stand-in images present"
  fi
}


# Prints each container of the project as: service state health exit-code.
container_states() {
  local ids
  ids="$(compose ps -q 2>/dev/null || true)"
  [ -n "$ids" ] || return 0
  # shellcheck disable=SC2086
  docker inspect --format \
    '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}}' \
    $ids
}

show_logs() {
  log "last log lines of: $*"
  compose logs --no-color --tail=40 "$@" >&2 || true
}

wait_healthy() {
  local deadline=$((SECONDS + TIMEOUT_S)) pending failed service state health code
  local reported=$SECONDS
  while :; do
    pending=() failed=()
    while read -r service state health code; do
      [ -n "$service" ] || continue
      if [ "$service" = agent-bootstrap ] || [ "$service" = agent-provisioner ]; then
        if [ "$state" = exited ] && [ "$code" != 0 ]; then failed+=("$service"); fi
        if [ "$state" != exited ]; then pending+=("$service"); fi
      elif [ "$state" = exited ] || [ "$state" = dead ] || [ "$health" = unhealthy ]; then
        failed+=("$service")
      elif [ "$state" != running ] || { [ "$health" != healthy ] && [ "$health" != none ]; }; then
        pending+=("$service")
      fi
    done < <(container_states)
    if [ ${#failed[@]} -gt 0 ]; then
      show_logs "${failed[@]}"
      die "not healthy: ${failed[*]}"
    fi
    [ ${#pending[@]} -eq 0 ] && return 0
    if [ $((SECONDS - reported)) -ge 30 ]; then
      log "still waiting for: ${pending[*]}"
      reported=$SECONDS
    fi
    if [ $SECONDS -ge $deadline ]; then
      show_logs "${pending[@]}"
      die "still not healthy after ${TIMEOUT_S}s: ${pending[*]}"
    fi
    sleep 2
  done
}

# Builds the four service images, quietly unless the build fails.
build_images() {
  local out
  out="$(mktemp)"
  if ! compose build >"$out" 2>&1; then
    tail -n 60 "$out" >&2
    rm -f "$out"
    return 1
  fi
  rm -f "$out"
}

start_containers() {
  local out
  out="$(mktemp)"
  if ! compose up -d --remove-orphans >"$out" 2>&1; then
    tail -n 60 "$out" >&2
    rm -f "$out"
    local broken
    broken="$(container_states | awk '$2 != "running" && $4 != 0 {print $1}' | tr '\n' ' ')"
    # shellcheck disable=SC2086
    [ -z "$broken" ] || show_logs $broken
    return 1
  fi
  rm -f "$out"
}

# True when COMPOSE_PROFILES asks for the optional Node-RED on the compose device.
node_red_profile() { [[ ",${COMPOSE_PROFILES:-}," == *",node-red,"* ]]; }
install_node_red_nodes() {
  npm --prefix clients/node-red ci --no-audit --no-fund --loglevel=error >/dev/null
}

# Builds the web console's static files on the host (its image copies clients/console/dist).
build_console() {
  if ! command -v npm >/dev/null; then
    apt-get install -y -qq nodejs npm >/dev/null 2>&1 || {
      apt-get update -qq
      apt-get install -y -qq nodejs npm >/dev/null
    }
  fi
  npm --prefix clients/console ci --no-audit --no-fund --loglevel=error >/dev/null
  npm --prefix clients/console run build >/dev/null
}

up() {
  local started=$SECONDS
  prepare
  step "building the web console (clients/console: npm ci, vite build)" build_console
  if node_red_profile; then
    step "installing the Node-RED nodes (clients/node-red, npm ci)" install_node_red_nodes
  fi
  step "building the service images (registry, deployer, gateway, device-agent)" build_images
  step "starting PostgreSQL, RabbitMQ, the four services and one device agent" start_containers
  step "waiting for every healthcheck (at most ${TIMEOUT_S}s)" wait_healthy
  echo "modelyard is up in $((SECONDS - started))s (project $PROJECT):"
  printf '  %-9s %-26s %s\n' \
    gateway "http://$BIND:${MODELYARD_GATEWAY_PORT:-8000}" "OpenAI API at /v1, docs at /docs" \
    registry "http://$BIND:${MODELYARD_REGISTRY_PORT:-8001}" "docs at /docs" \
    deployer "http://$BIND:${MODELYARD_DEPLOYER_PORT:-8002}" "docs at /docs" \
    agent "http://127.0.0.1:${MODELYARD_AGENT_PORT:-8003}" "docs at /docs (this machine only)" \
    console "http://$BIND:${MODELYARD_CONSOLE_PORT:-8080}" "the web console (dev sign-in: modelyard dev-token)"
  if node_red_profile; then
    printf '  %-9s %-26s %s\n' node-red "http://$BIND:${MODELYARD_NODE_RED_PORT:-1880}" \
      "flow editor with the Modelyard nodes"
  fi
  echo "stop it with 'make down' ('bash scripts/compose.sh down -v' also drops its data)"
}

# Removes the model containers, images and networks the compose agent made (not compose's).
remove_model_containers() {
  local device ids
  [ -r "$DATA_DIR/agent.env" ] || return 0
  device="$(sed -n 's/^MODELYARD_AGENT_DEVICE_ID=//p' "$DATA_DIR/agent.env")"
  [ -n "$device" ] || return 0
  ids="$(docker ps -aq --filter label=io.modelyard.managed=true --filter "label=io.modelyard.device=$device")"
  # shellcheck disable=SC2086
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  ids="$(docker images -q --filter label=io.modelyard.managed=true --filter "label=io.modelyard.device=$device")"
  # shellcheck disable=SC2086
  [ -z "$ids" ] || docker rmi -f $ids >/dev/null 2>&1 || true
  ids="$(docker network ls -q --filter label=io.modelyard.managed=true --filter "label=io.modelyard.device=$device")"
  # shellcheck disable=SC2086
  [ -z "$ids" ] || docker network rm $ids >/dev/null 2>&1 || true
}

down() {
  find_compose || die "neither 'docker compose' nor 'docker-compose' works: nothing to stop"
  local volumes=()
  [ "${1:-}" = "-v" ] && volumes=(-v)
  local out
  out="$(mktemp)"
  if ! compose down --remove-orphans "${volumes[@]}" >"$out" 2>&1; then
    cat "$out" >&2
    rm -f "$out"
    die "'down' failed"
  fi
  rm -f "$out"
  # After the agent is gone, so that it cannot start them again.
  remove_model_containers
  # The data directory is a bind mount, so `-v` does not reach it; remove it only when it is
  # the agent's (it holds the agent.env `modelyard-agent register` wrote).
  if [ ${#volumes[@]} -gt 0 ] && [ -f "$DATA_DIR/agent.env" ]; then
    rm -rf "$DATA_DIR"
  fi
}

# Walks the smoke story (tests/smoke_story.py) against a suite that is up.
story() {
  find_compose || die "neither 'docker compose' nor 'docker-compose' works: is the suite up?"
  local token approver
  # The service images hold libs/common, not the people's CLI: sign the dev tokens with it. Two
  # people: the policy gate (enforce) serves only models someone else approved.
  token="$(compose exec -T -e "WORKSPACE=${MODELYARD_WORKSPACE:-default}" registry python -c \
    'import os; from modelyard_common.devtoken import dev_token
print(dev_token(sub="smoke", roles=["admin"], workspace=os.environ["WORKSPACE"]))')"
  approver="$(compose exec -T -e "WORKSPACE=${MODELYARD_WORKSPACE:-default}" registry python -c \
    'import os; from modelyard_common.devtoken import dev_token
print(dev_token(sub="smoke-approver", roles=["approver"], workspace=os.environ["WORKSPACE"]))')"
  python3 tests/smoke_story.py \
    --registry "http://$BIND:${MODELYARD_REGISTRY_PORT:-8001}" \
    --deployer "http://$BIND:${MODELYARD_DEPLOYER_PORT:-8002}" \
    --gateway "http://$BIND:${MODELYARD_GATEWAY_PORT:-8000}" \
    --agent "http://127.0.0.1:${MODELYARD_AGENT_PORT:-8003}" \
    --model-image "${MODELYARD_SMOKE_MODEL_IMAGE:-${MODELYARD_BASE_IMAGE:-modelyard/python-base:bookworm}}" \
    --token "$token" --approver-token "$approver" || {
    show_logs deployer gateway device-agent
    die "smoke story failed"
  }
}

smoke() {
  trap 'down -v || true' EXIT
  up
  story
}

case "${1:-}" in
  up) up ;;
  tools) tools ;;
  prepare) prepare ;;
  down) shift; down "$@" ;;
  smoke) smoke ;;
  story) story ;;
  *) echo "usage: $0 up | down [-v] | smoke | story | tools | prepare" >&2; exit 2 ;;
esac
