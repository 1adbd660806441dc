"""docker-compose.yml is valid for Debian's docker-compose v1 and wires the stack as documented."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from streams.config import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"

# `docker-compose config` prints YAML; docker-compose (Python) ships PyYAML, so its own
# interpreter turns that into JSON (the project itself does not depend on a YAML library).
_YAML_TO_JSON = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"


def _compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed (scripts/bootstrap.sh installs it via apt)")
    return binary


def _interpreter_of(script: str) -> str:
    first_line = Path(script).read_text(errors="replace").splitlines()[0]
    if not first_line.startswith("#!"):
        pytest.skip(f"{script} is not a Python script; cannot read its YAML output")
    return first_line[2:].strip().split()[0]


@pytest.fixture(scope="module")
def compose_config() -> dict[str, Any]:
    binary = _compose_binary()
    rendered = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "--profile", "influxdb", "config"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    assert rendered.returncode == 0, rendered.stderr
    as_json = subprocess.run(
        [_interpreter_of(binary), "-c", _YAML_TO_JSON],
        input=rendered.stdout,
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = json.loads(as_json.stdout)
    return config


def test_quiet_validation_passes() -> None:
    binary = _compose_binary()
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_services_and_roles(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    expected = {"kafka", "victoria-metrics", "influxdb", "grafana", "topic-init", "worker"}
    expected |= {"fleet", "carbon-feed", "load-generator"}
    assert expected <= set(services)
    commands = {name: services[name].get("command") for name in services}
    assert commands["topic-init"] == ["topics", "create"]
    assert commands["worker"] == ["worker"]
    assert commands["fleet"][0] == "fleet"
    assert commands["carbon-feed"][0] == "carbon-feed"
    assert commands["load-generator"][0] == "produce"
    assert services["worker"]["scale"] >= 2


def test_infrastructure_has_healthchecks(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    for name in ("kafka", "victoria-metrics", "influxdb", "grafana"):
        assert services[name]["healthcheck"]["test"], name


def test_startup_order_waits_for_health(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    for name in ("topic-init", "worker", "fleet", "carbon-feed", "load-generator"):
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy", name
        if name != "topic-init":
            assert depends["topic-init"]["condition"] == "service_completed_successfully", name
    assert services["worker"]["depends_on"]["victoria-metrics"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["victoria-metrics"]["condition"] == "service_healthy"


def test_app_containers_reach_the_compose_services(compose_config: dict[str, Any]) -> None:
    worker = compose_config["services"]["worker"]
    assert worker["environment"]["GAR_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert worker["environment"]["GAR_INFLUX__URL"] == "http://victoria-metrics:8428"
    assert worker["build"]["dockerfile"] == "docker/Dockerfile"
    assert (REPO_ROOT / "docker" / "Dockerfile").is_file()


def test_grafana_provisioning_is_mounted(compose_config: dict[str, Any]) -> None:
    grafana = compose_config["services"]["grafana"]
    mounts = {
        str(v).split(":")[1] if isinstance(v, str) else v["target"] for v in grafana["volumes"]
    }
    assert {"/etc/grafana/provisioning", "/var/lib/grafana/dashboards"} <= mounts
    assert (REPO_ROOT / "grafana" / "provisioning" / "datasources").is_dir()
    assert grafana["environment"]["GAR_METRICS_URL"] == "http://victoria-metrics:8428"
