#!/usr/bin/env bash
# README test command: set up (idempotent), start the local services that are not running,
# run pytest over tests/, stop only the services this script started, exit with pytest's code.
#   bash scripts/test.sh [pytest args...]   e.g. bash scripts/test.sh -m "not slow" -x tests/unit/devenv
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

[[ "${GAR_SKIP_BOOTSTRAP:-0}" == "1" ]] || bash scripts/bootstrap.sh
export_service_env
on_exit stop_started_services
start_services_if_needed

log "pytest (kafka=$GAR_KAFKA__BOOTSTRAP_SERVERS metrics=$GAR_INFLUX__URL)"
rc=0
# No path given: pytest runs testpaths = ["tests"] from pyproject.toml.
"$VENV/bin/pytest" "$@" || rc=$?
exit "$rc"
