"""Fixtures for the integration tests: the real metrics store (skip if it is not up), unique run
ids (each test's topics are removed by the root conftest)."""

from __future__ import annotations

import uuid

import pytest

from streams.config import InfluxSettings, Settings
from streams.metrics.query import FluxClient


@pytest.fixture
def run_id() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def influx_settings(run_id: str) -> InfluxSettings:
    base = Settings().influx
    return base.model_copy(update={"worker_tag": run_id, "flush_interval_ms": 200})


@pytest.fixture
def flux(influx_settings: InfluxSettings) -> FluxClient:
    client = FluxClient(influx_settings)
    if not client.healthy():
        pytest.fail(f"metrics store not reachable at {influx_settings.url} (scripts/dev.sh up)")
    return client
