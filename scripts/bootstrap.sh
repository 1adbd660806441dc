#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian bookworm machine (root, python3 = 3.11, Java 17, Maven):
#   apt packages (victoria-metrics, docker-compose, and java/maven/venv if missing),
#   .venv with the pinned requirements.lock + this project (editable, no deps),
#   the Apache Kafka broker jars (Maven Central) in .cache/.
# Re-running it skips every step that is already done.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
t_start=$SECONDS

# -- apt ------------------------------------------------------------------------------------
missing=()
command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
"${PYTHON:-python3}" -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
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

# -- Kafka jars -----------------------------------------------------------------------------
log "kafka jars: $("$GAR" dev fetch)"
t_jars=$SECONDS

log "bootstrap done in $((t_jars - t_start))s (apt $((t_apt - t_start))s, venv $((t_venv - t_apt))s, jars $((t_jars - t_venv))s)"
