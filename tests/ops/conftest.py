"""Fixtures for the ops tests: the real metrics store (skip if it is not up) and unique ids."""

from __future__ import annotations

import uuid

import pytest
import typer

from streams.cli import ops
from streams.config import InfluxSettings, Settings
from streams.metrics.query import PromClient


@pytest.fixture
def run_id() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def influx_settings(run_id: str) -> InfluxSettings:
    base = Settings().influx
    return base.model_copy(update={"worker_tag": run_id, "flush_interval_ms": 200})


@pytest.fixture
def prom(influx_settings: InfluxSettings) -> PromClient:
    client = PromClient(influx_settings.url)
    if not client.healthy():
        pytest.skip(f"metrics store not reachable at {influx_settings.url} (scripts/dev.sh up)")
    return client


def ops_cli() -> typer.Typer:
    """A fresh root app with only the ops commands (the shared root app registers once)."""
    root = typer.Typer()
    root.callback()(lambda: None)
    ops.register(root)
    return root
