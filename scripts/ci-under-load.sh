#!/usr/bin/env bash
# Rehearse CI on a busy machine: `.ci/run` on fresh clones, RUNS times in a row, while
# `stress-ng --cpu 2` keeps both cores busy and another client holds HELD PostgreSQL connections.
#
#   bash scripts/ci-under-load.sh            # 3 runs, 40 held connections, clones of HEAD
#   RUNS=1 HELD=40 bash scripts/ci-under-load.sh
#
# Prints one line per run (exit code, minutes, the suite's peak PostgreSQL connections as its
# hermetic check measured them) and keeps each run's log in $OUT. Stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
HELD=${HELD:-40}
CPU=${CPU:-2}
OUT=${OUT:-/tmp/ci-under-load}
SOURCE=$(pwd)
REV=$(git rev-parse HEAD)
PGURL=${PGURL:-postgresql://postgres@127.0.0.1:5432/postgres}
mkdir -p "$OUT"

command -v stress-ng >/dev/null || { apt-get update -qq && apt-get install -y -qq stress-ng >/dev/null; }
bash scripts/ensure-services.sh >/dev/null

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # A killed psql leaves its backend sleeping: end the held sessions on the server too.
  psql "$PGURL" -qAtc "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE query LIKE 'SELECT pg_sleep(86400)%' AND pid <> pg_backend_pid()" >/dev/null 2>&1 || true
}
trap cleanup EXIT

stress-ng --cpu "$CPU" --timeout 0 --quiet &
pids+=($!)
# One psql per held connection, each idle in a long sleep (a connection the suite cannot use).
for _ in $(seq "$HELD"); do
  psql "$PGURL" -qAtc "SELECT pg_sleep(86400)" >/dev/null 2>&1 &
  pids+=($!)
done
sleep 3
held=$(psql "$PGURL" -Atc "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(86400)%'")
echo "ci-under-load: $REV, stress-ng --cpu $CPU, $held PostgreSQL connections held"

printf '%-4s %-6s %-9s %s\n' run exit minutes "peak PostgreSQL connections (suite; server)"
for i in $(seq "$RUNS"); do
  dir=$(mktemp -d /tmp/ci-under-load-clone.XXXX)
  git clone -q "$SOURCE" "$dir"
  start=$(date +%s)
  set +e
  (cd "$dir" && bash .ci/run) >"$OUT/run$i.log" 2>&1
  rc=$?
  set -e
  minutes=$(awk -v s="$start" -v e="$(date +%s)" 'BEGIN { printf "%.1f", (e - s) / 60 }')
  peak=$(grep -o 'peak PostgreSQL connections: .*' "$OUT/run$i.log" | head -1 | cut -d: -f2-)
  printf '%-4s %-6s %-9s %s\n' "$i" "$rc" "$minutes" "${peak:- (not printed)}"
  rm -rf "$dir"
  [ "$rc" -eq 0 ] || { echo "ci-under-load: run $i failed; its log: $OUT/run$i.log" >&2; exit 1; }
done
