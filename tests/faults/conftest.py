from __future__ import annotations

from pathlib import Path

import pytest
from app.helpers import write_catalog


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "catalog.json")
