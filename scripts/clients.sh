#!/usr/bin/env bash
# The typed TypeScript clients (clients/typescript), generated from the apps' OpenAPI documents.
#
#   generate  dump each service's /openapi.json from its app, regenerate src/*.ts with
#             openapi-typescript, type-check everything (examples included) with tsc --strict
#   check     the same into a scratch copy; fail when the committed files differ (drift) or
#             when tsc --strict fails
#
# Node.js and npm are needed; packages come from package-lock.json (`npm ci`).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
TS="$(cd "${MODELYARD_TS_CLIENTS:-clients/typescript}" && pwd)"

install() {
  # `npm ci` again only when the lock file changed since the last install.
  if [ ! -f "$1/node_modules/.package-lock.json" ] || \
     ! cmp -s "$1/package-lock.json" "$1/node_modules/.modelyard-lock"; then
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$1/package-lock.json" "$1/node_modules/.modelyard-lock"
  fi
}

regenerate() {
  local dir="$1"
  "$PYTHON" scripts/dump-openapi.py "$dir/openapi"
  (cd "$dir" && npm run --silent generate >/dev/null && npm run --silent typecheck)
}

case "${1:-}" in
  generate)
    install "$TS"
    regenerate "$TS"
    echo "clients: regenerated $TS/openapi and $TS/src from the apps; tsc --strict passes"
    ;;
  check)
    install "$TS"
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    cp -r "$TS/openapi" "$TS/src" "$TS/examples" "$TS"/*.json "$scratch/"
    ln -s "$TS/node_modules" "$scratch/node_modules"
    regenerate "$scratch"
    if ! diff -ru "$TS/openapi" "$scratch/openapi" >"$scratch.diff" || \
       ! diff -ru "$TS/src" "$scratch/src" >>"$scratch.diff"; then
      head -n 80 "$scratch.diff" >&2
      rm -f "$scratch.diff"
      echo "clients: $TS is out of date with the services' OpenAPI: run 'make clients'" >&2
      exit 1
    fi
    rm -f "$scratch.diff"
    echo "clients: up to date with the apps; tsc --strict passes"
    ;;
  *) echo "usage: $0 generate | check" >&2; exit 2 ;;
esac
