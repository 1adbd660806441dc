#!/usr/bin/env bash
# ruff lint + format check over the project's Python (config in pyproject.toml).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
"$VENV/bin/ruff" check streams tests benchmarks
"$VENV/bin/ruff" format --check streams tests benchmarks
