#!/usr/bin/env bash
# ruff lint + format check and the import-layer contracts (config in pyproject.toml).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
"$VENV/bin/ruff" check streams tests benchmarks
"$VENV/bin/ruff" format --check streams tests benchmarks
# Layer contracts (pyproject.toml [tool.importlinter]): imports point down, no cycles.
"$VENV/bin/lint-imports" --no-cache
