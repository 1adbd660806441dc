# Shared helpers for scripts/*.sh and .ci/run (source it; do not run it).
# Honors the GAR_DEV__* overrides (ports, state dir) and derives the client addresses from them,
# so a private set of services (e.g. a clean-clone CI run next to the team's) stays consistent.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GAR_VENV:-$ROOT/.venv}"
GAR="$VENV/bin/gar"
GAR_SERVICES=(kafka metrics)
GAR_STARTED_SERVICES=()
# In a checkout the services' state and binaries stay in it (var/, .cache/); the installed
# package's defaults are the user's state and cache directories.
export GAR_DEV__STATE_DIR="${GAR_DEV__STATE_DIR:-$ROOT/var}"
export GAR_DEV__CACHE_DIR="${GAR_DEV__CACHE_DIR:-$ROOT/.cache}"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Clients (app, tests) must talk to the services dev.sh starts: derive their addresses from the
# GAR_DEV__* ports unless they were set explicitly.
export_service_env() {
  local host="${GAR_DEV__HOST:-127.0.0.1}"
  export GAR_KAFKA__BOOTSTRAP_SERVERS="${GAR_KAFKA__BOOTSTRAP_SERVERS:-$host:${GAR_DEV__KAFKA_PORT:-19092}}"
  export GAR_INFLUX__URL="${GAR_INFLUX__URL:-http://$host:${GAR_DEV__METRICS_PORT:-18086}}"
}

# Start each service that is not already healthy; remember which ones we started.
start_services_if_needed() {
  local svc
  for svc in "${GAR_SERVICES[@]}"; do
    if "$GAR" dev status --service "$svc" >/dev/null 2>&1; then
      log "$svc already running: leaving it alone"
    else
      log "starting $svc"
      "$GAR" dev up --service "$svc"
      GAR_STARTED_SERVICES+=("$svc")
    fi
  done
}

# Stop only what start_services_if_needed started (safe to call twice; used in EXIT traps).
stop_started_services() {
  local svc
  for svc in "${GAR_STARTED_SERVICES[@]+"${GAR_STARTED_SERVICES[@]}"}"; do
    log "stopping $svc"
    "$GAR" dev down --service "$svc" || log "could not stop $svc"
  done
  GAR_STARTED_SERVICES=()
# In a checkout the services' state and binaries stay in it (var/, .cache/); the installed
# package's defaults are the user's state and cache directories.
export GAR_DEV__STATE_DIR="${GAR_DEV__STATE_DIR:-$ROOT/var}"
export GAR_DEV__CACHE_DIR="${GAR_DEV__CACHE_DIR:-$ROOT/.cache}"
}

# EXIT traps do not run when bash dies of SIGINT/SIGTERM: turn those into exits so they do.
on_exit() {
  trap "$1" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
