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
- ``private_cluster`` (module): a PRIVATE replicated three-node KRaft cluster on free ports,
  shared by one test module (starting it costs ~20 s of this machine's two cores).
- ``shared_data`` (session): the shared real-data directory; skips the test when it is absent.
- ``catalog_path``: the small test catalog (``support.worker``) written to a file.

Layout: ``unit/<package>/`` (no broker), ``integration/`` (the local broker and metrics store),
``faults/`` (fault injection against real brokers), ``compose/`` (the docker-compose stack, only
with ``-m compose``), ``support/`` (helpers shared by all).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from support.worker import TEST_MAC_KEY, write_catalog

from streams.config import Settings
from streams.devenv import KafkaBroker, KafkaCluster, free_port, private_dev_settings
from streams.devenv.health import http_ok, kafka_healthy
from streams.kafka.admin import delete_prefixed_topics

SettingsFactory = Callable[..., Settings]

# Property tests: random examples locally (they find new cases), a fixed sequence where
# HYPOTHESIS_PROFILE=ci (.ci/run), so a landing is not decided by the draw. A case found
# locally is added to the family's strategy or as an @example.
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# The tests read the full public data beside the checkout (../shared/data) when it is there, not
# the sample shipped in the package; GAR_DATA__DIR set by the caller wins. Set in the
# environment so the worker and tool subprocesses the tests start read the same data.
_FULL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if _FULL_DATA.is_dir():
    os.environ.setdefault("GAR_DATA__DIR", str(_FULL_DATA))


@dataclass(frozen=True)
class DevServices:
    bootstrap_servers: str
    metrics_url: str


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The compose stack (tests/compose) builds images and runs a Docker engine for minutes:
    it runs only when a ``-m`` expression names it (``pytest -m compose``)."""
    if "compose" in (config.getoption("markexpr") or ""):
        return
    compose = [item for item in items if item.get_closest_marker("compose")]
    if compose:
        config.hook.pytest_deselected(items=compose)
        items[:] = [item for item in items if not item.get_closest_marker("compose")]


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
    # GAR_TEST_KEEP_TOPICS=1 leaves them for a post-mortem (docs/development.md).
    if integration and uid is not None and os.environ.get("GAR_TEST_KEEP_TOPICS") != "1":
        _drop_test_topics(str(uid))


def _drop_test_topics(uid: str) -> None:
    """Delete this test's topics and its app's changelogs from the shared broker: thousands of
    leftovers made each all-topics metadata request (Faust asks for one at every worker start)
    cost 100-300 ms of client CPU. Best effort: a test that stopped the broker must not fail."""
    with contextlib.suppress(Exception):
        asyncio.run(
            asyncio.wait_for(
                delete_prefixed_topics(Settings(), [f"test.{uid}.", f"gar-test-{uid}"]), 15
            )
        )


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
            # Workers sign their decisions, audits verify them (support/audit.py).
            "decision_mac": {"key": TEST_MAC_KEY},
        }
        return Settings(**_deep_merge(_deep_merge(base, isolation), overrides))

    return make


@pytest.fixture
def settings(settings_factory: SettingsFactory) -> Settings:
    return settings_factory()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Settings().data.dir
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    """The small test catalog written to a file, for workers started with it."""
    return write_catalog(tmp_path / "catalog.json")


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A started private broker on free ports with its data under ``tmp_path``; killed after."""
    broker = KafkaBroker(private_dev_settings(tmp_path / "dev"))
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three started private nodes on free ports, data under a module temp dir; killed after."""
    dev = private_dev_settings(tmp_path_factory.mktemp("cluster"))
    cluster = KafkaCluster(dev, ports=[(free_port(), free_port()) for _ in range(3)])
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.kill()


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
