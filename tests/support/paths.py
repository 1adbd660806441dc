"""Where the checkout is (the tests read its files: docker-compose.yml, grafana/, sources)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
