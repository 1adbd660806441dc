#!/usr/bin/env bash
# Local dev services: Apache Kafka 4.x (KRaft, 127.0.0.1:19092) + VictoriaMetrics (127.0.0.1:18428).
#   bash scripts/dev.sh up [--clean] | down [--clean] | status | fetch
# Ports and dirs follow GAR_DEV__* env overrides (GAR_DEV__KAFKA_PORT, GAR_DEV__STATE_DIR, ...).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GAR="${GAR_BIN:-$ROOT/.venv/bin/gar}"
if [[ ! -x "$GAR" ]]; then
  echo "no virtualenv at $ROOT/.venv: run scripts/bootstrap.sh first" >&2
  exit 2
fi
cd "$ROOT"
exec "$GAR" dev "$@"
