#!/usr/bin/env bash
# Local dev services: Apache Kafka 4.x (KRaft, 127.0.0.1:19092) + InfluxDB 1.8 (127.0.0.1:18086).
#   bash scripts/dev.sh up [--clean] [--service kafka|metrics]
#   bash scripts/dev.sh down [--clean] [--service ...] | status [--service ...] | fetch [--service ...]
# Ports and dirs follow the GAR_DEV__* env overrides (GAR_DEV__KAFKA_PORT, GAR_DEV__STATE_DIR, ...).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [[ ! -x "$GAR" ]]; then
  echo "no $GAR: run scripts/bootstrap.sh first" >&2
  exit 2
fi
cd "$ROOT"
exec "$GAR" dev "$@"
