#!/usr/bin/env bash
# README command 1: set up everything (idempotent), start the local broker and metrics store,
# then run the main job on the embedded default (`gar demo`: real requests routed by a worker
# against a real carbon trace, with a summary table). The services keep running afterwards so
# you can look around; stop them with `bash scripts/dev.sh down`.
#   bash scripts/demo.sh [gar demo args...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

[[ "${GAR_SKIP_BOOTSTRAP:-0}" == "1" ]] || bash scripts/bootstrap.sh
export_service_env
start_services_if_needed
if ! "$GAR" demo --help >/dev/null 2>&1; then
  log "'gar demo' is not available in this checkout yet (the app area provides it)"
  exit 3
fi
exec "$GAR" demo "$@"
