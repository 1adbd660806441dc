#!/usr/bin/env bash
# Run every benchmarks/bench_*.py (not tests: they print measurements). Starts the local
# services that are not running and stops only those afterwards.
#   bash scripts/bench.sh [name-filter]     e.g. bash scripts/bench.sh core
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
export_service_env
on_exit stop_started_services
start_services_if_needed
shopt -s nullglob
for bench in benchmarks/bench_*"${1:-}"*.py; do
  log "== $bench"
  "$VENV/bin/python" "$bench"
done
