#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian bookworm machine (root, python3 = 3.11, Java 17, Maven, Go):
#   apt packages (docker-compose, headless Chromium, docker.io and debootstrap for the compose
#   test, and java/maven/go/venv if missing),
#   .venv with the pinned requirements.lock + this project (editable, no deps),
#   the Apache Kafka broker jars (Maven Central) and InfluxDB's influxd (built with Go from the
#   Go module proxy) in the cache ($GAR_DEV__CACHE_DIR, default .cache/).
# Re-running it skips every step that is already done.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
t_start=$SECONDS

# -- apt ------------------------------------------------------------------------------------
missing=()
command -v go >/dev/null || [[ -x /usr/local/go/bin/go ]] || missing+=(golang-go)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
"${PYTHON:-python3}" -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
# Headless Chromium from Debian's packages: the status-page test renders the page in it.
command -v chromium-headless-shell >/dev/null || missing+=(chromium-headless-shell)
# The compose test (tests/compose) runs its own dockerd and builds a Debian base: docker.io and
# debootstrap. Installing docker.io would also start the system's dockerd with its default
# bridge unless service starts are denied (policy-rc.d exits 101), so only then.
policy_denies_starts() {
  [[ -x /usr/sbin/policy-rc.d ]] || return 1
  local rc=0
  /usr/sbin/policy-rc.d docker start >/dev/null 2>&1 || rc=$?
  [[ $rc -eq 101 ]]
}
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  if policy_denies_starts; then
    missing+=(docker.io debootstrap)
  else
    log "apt: not installing docker.io (it would start the system's dockerd); pytest -m compose needs it"
  fi
fi
if ((${#missing[@]})); then
  log "apt: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "apt: nothing to install"
fi
t_apt=$SECONDS

# -- Python venv ----------------------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  log "need Python 3.11 (set PYTHON=/path/to/python3.11); $PYTHON is $("$PYTHON" -V 2>&1)"
  exit 2
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  log "venv: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.gar-installed"
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  log "venv: pip install -r requirements.lock && pip install -e . --no-deps"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.lock
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" >"$stamp"
else
  log "venv: up to date"
fi
t_venv=$SECONDS

# -- Kafka jars, influxd ----------------------------------------------------------------------
[[ -x /usr/local/go/bin/go ]] && export PATH="$PATH:/usr/local/go/bin"
log "$("$GAR" dev fetch --service kafka)"
t_jars=$SECONDS
log "$("$GAR" dev fetch --service metrics)"
t_influx=$SECONDS

log "bootstrap done in $((t_influx - t_start))s (apt $((t_apt - t_start))s, venv $((t_venv - t_apt))s, jars $((t_jars - t_venv))s, influxd $((t_influx - t_jars))s)"
