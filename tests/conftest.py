"""Shared fixtures for every test area.

- ``dev_services`` (session): the shared local broker and metrics store, checked once. Every test
  marked ``@pytest.mark.integration`` gets it automatically and FAILS (not skips) with
  "run scripts/dev.sh up" when a service is unreachable.
- ``unique_id`` / ``topic_prefix`` / ``app_id``: per-test names so tests never share topics,
  consumer groups or Faust app ids on the shared broker.
- ``settings_factory`` / ``settings``: a ``Settings`` from the environment with this test's
  unique topic prefix and app id and short consumer timeouts; override any nested field:
  ``settings_factory(topics={"partitions": 2}, worker={"batch_max": 10})``.
- ``private_broker``: a PRIVATE Kafka broker (own ports and data dir) for start/stop/kill tests;
  never stop the shared one.
- ``shared_data`` (session): the shared real-data directory; skips the test when it is absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streams.app.admin import delete_prefixed_topics
from streams.config import Settings
from streams.devenv import KafkaBroker, private_dev_settings
from streams.devenv.health import http_ok, kafka_healthy

SettingsFactory = Callable[..., Settings]


@dataclass(frozen=True)
class DevServices:
    bootstrap_servers: str
    metrics_url: str


@pytest.fixture(scope="session")
def dev_services() -> DevServices:
    """The shared broker and store the tests' Settings point at; fail clearly if either is down."""
    settings = Settings()
    bootstrap = settings.kafka.bootstrap_servers
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    problems = []
    if not kafka_healthy(host, int(port)):
        problems.append(f"Kafka broker not reachable at {bootstrap}")
    if not http_ok(f"{settings.influx.url}/health"):
        problems.append(f"metrics store not reachable at {settings.influx.url}")
    if problems:
        pytest.fail("; ".join(problems) + ": run `bash scripts/dev.sh up`", pytrace=False)
    return DevServices(bootstrap_servers=bootstrap, metrics_url=settings.influx.url)


@pytest.fixture(autouse=True)
def _integration_needs_services(request: pytest.FixtureRequest) -> Iterator[None]:
    integration = request.node.get_closest_marker("integration") is not None
    if integration:
        request.getfixturevalue("dev_services")
    uid = request.getfixturevalue("unique_id") if "unique_id" in request.fixturenames else None
    yield
    if integration and uid is not None:
        _drop_test_topics(str(uid))


def _drop_test_topics(uid: str) -> None:
    """Delete this test's topics and its app's changelogs from the shared broker: thousands of
    leftovers made each all-topics metadata request (Faust asks for one at every worker start)
    cost 100-300 ms of client CPU. Best effort: a test that stopped the broker must not fail."""
    with contextlib.suppress(Exception):
        asyncio.run(asyncio.wait_for(
            delete_prefixed_topics(Settings(), [f"test.{uid}.", f"gar-test-{uid}"]), 15))


@pytest.fixture
def unique_id() -> str:
    """Short random id, safe in topic names, group ids and Faust app ids."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topic_prefix(unique_id: str) -> str:
    return f"test.{unique_id}."


@pytest.fixture
def app_id(unique_id: str) -> str:
    return f"gar-test-{unique_id}"


@pytest.fixture
def settings_factory(topic_prefix: str, app_id: str) -> SettingsFactory:
    """Build ``Settings`` (env first, then test isolation defaults, then your overrides)."""

    def make(**overrides: Any) -> Settings:
        base = Settings().model_dump()
        isolation: dict[str, Any] = {
            "app_id": app_id,
            "topics": {"prefix": topic_prefix},
            # The first group join waits about half the session timeout: keep it short.
            "kafka": {"session_timeout_ms": 3_000, "heartbeat_interval_ms": 500},
        }
        return Settings(**_deep_merge(_deep_merge(base, isolation), overrides))

    return make


@pytest.fixture
def settings(settings_factory: SettingsFactory) -> Settings:
    return settings_factory()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Settings().data.shared_data_dir
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A started private broker on free ports with its data under ``tmp_path``; killed after."""
    broker = KafkaBroker(private_dev_settings(tmp_path / "dev"))
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
