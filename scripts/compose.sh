#!/usr/bin/env bash
# The compose suite (deploy/compose.yaml): `up`, `down [-v]`, `smoke`.
#
#   up      make sure Docker runs and the images compose names exist (local stand-ins where no
#           registry is reachable), build the four service images, start everything and wait
#           until every healthcheck passes
#   down    stop and remove the containers (and the model containers the agent started);
#           with -v also the named volumes and the agent's data directory
#   smoke   up, walk a short story against the published ports (tests/smoke_story.py), down -v
#   story   only the story, against a suite that is up (the tests share one `up` this way)
#
# Works with `docker compose` (v2) or `docker-compose` (1.29). Quiet on success but for one line;
# on failure it shows what failed and the logs of the services concerned. Settings: everything
# deploy/compose.yaml reads, plus MODELYARD_COMPOSE_PROJECT (default `modelyard`) and
# MODELYARD_COMPOSE_TIMEOUT_S (default 600).
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT="${MODELYARD_COMPOSE_PROJECT:-modelyard}"
TIMEOUT_S="${MODELYARD_COMPOSE_TIMEOUT_S:-600}"
COMPOSE_FILE="deploy/compose.yaml"
DATA_DIR="${MODELYARD_AGENT_DATA_DIR:-/var/lib/modelyard-agent}"
BIND="${MODELYARD_BIND:-127.0.0.1}"
[ "$BIND" = 0.0.0.0 ] && BIND=127.0.0.1

log() { echo "compose: $*" >&2; }
die() { log "$*"; exit 1; }

if docker compose version >/dev/null 2>&1; then
  compose() { docker compose -p "$PROJECT" -f "$COMPOSE_FILE" "$@"; }
elif command -v docker-compose >/dev/null 2>&1; then
  compose() { docker-compose -p "$PROJECT" -f "$COMPOSE_FILE" "$@"; }
else
  die "neither 'docker compose' nor 'docker-compose' is installed"
fi

# The agent needs the Docker socket's group inside its container.
DOCKER_GID="${DOCKER_GID:-$(stat -c %g "${DOCKER_SOCKET:-/var/run/docker.sock}" 2>/dev/null || echo 0)}"
export DOCKER_GID

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
    if [ $SECONDS -ge $deadline ]; then
      show_logs "${pending[@]}"
      die "still not healthy after ${TIMEOUT_S}s: ${pending[*]}"
    fi
    sleep 2
  done
}

up() {
  if [ -f scripts/ensure-docker.sh ]; then bash scripts/ensure-docker.sh; fi
  bash scripts/standin-images.sh
  # The image the smoke story's model runs in (and the agent's default project base image).
  if [ -f scripts/ensure-base-image.sh ]; then bash scripts/ensure-base-image.sh; fi
  local out
  out="$(mktemp)"
  if ! compose up -d --build --remove-orphans >"$out" 2>&1; then
    tail -n 60 "$out" >&2
    rm -f "$out"
    local broken
    broken="$(container_states | awk '$2 != "running" && $4 != 0 {print $1}' | tr '\n' ' ')"
    [ -z "$broken" ] || show_logs $broken
    die "'up' failed"
  fi
  rm -f "$out"
  wait_healthy
  echo "modelyard is up: gateway http://$BIND:${MODELYARD_GATEWAY_PORT:-8000}," \
    "registry http://$BIND:${MODELYARD_REGISTRY_PORT:-8001}," \
    "deployer http://$BIND:${MODELYARD_DEPLOYER_PORT:-8002} (project $PROJECT)"
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
  down) shift; down "$@" ;;
  smoke) smoke ;;
  story) story ;;
  *) echo "usage: $0 up | down [-v] | smoke | story" >&2; exit 2 ;;
esac
