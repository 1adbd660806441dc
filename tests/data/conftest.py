from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import Settings


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Settings().data.shared_data_dir
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path
