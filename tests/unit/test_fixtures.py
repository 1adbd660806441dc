"""The shared fixtures of tests/conftest.py do what other areas rely on."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from support.paths import REPO_ROOT

from streams.config import Settings
from streams.devenv import free_port


def test_settings_factory_isolates_and_overrides(
    settings_factory: Any, topic_prefix: str, app_id: str
) -> None:
    settings = settings_factory(topics={"partitions": 2}, worker={"batch_max": 7})
    assert isinstance(settings, Settings)
    assert settings.topics.prefix == topic_prefix
    assert settings.topics.name("requests") == f"{topic_prefix}requests"
    assert settings.app_id == app_id
    assert settings.topics.partitions == 2
    assert settings.worker.batch_max == 7
    # Untouched sections keep the environment's values.
    assert settings.kafka.bootstrap_servers == Settings().kafka.bootstrap_servers


def test_unique_ids_differ(unique_id: str, topic_prefix: str) -> None:
    assert unique_id in topic_prefix


def test_integration_tests_fail_clearly_when_services_are_down() -> None:
    closed = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "GAR_KAFKA__BOOTSTRAP_SERVERS": closed,
        "GAR_INFLUX__URL": f"http://127.0.0.1:{free_port()}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/integration/test_metrics_store.py"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert f"Kafka broker not reachable at {closed}" in result.stdout
    assert "run `bash scripts/dev.sh up`" in result.stdout
