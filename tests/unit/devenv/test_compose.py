"""docker-compose.yml is valid for Debian's docker-compose v1 and wires the stack as documented."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.paths import REPO_ROOT

from streams.devenv.compose_stack import host_network_problems, rendered_config

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
LOCAL_FILE = REPO_ROOT / "docker-compose.local.yml"
PORTS_FILE = REPO_ROOT / "docker-compose.override.yml"


def _compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed (scripts/bootstrap.sh installs it via apt)")
    return binary


def _config(*files: Path) -> dict[str, Any]:
    _compose_binary()
    return rendered_config(list(files), REPO_ROOT)


@pytest.fixture(scope="module")
def compose_config() -> dict[str, Any]:
    return _config(COMPOSE_FILE)


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
    expected = {"kafka", "influxdb", "grafana", "topic-init", "worker"}
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
    assert "victoria-metrics" not in services and "profiles" not in services["influxdb"]
    for name in ("kafka", "influxdb", "grafana"):
        assert services[name]["healthcheck"]["test"], name
    # the worker's readiness probe, on its web server
    worker = services["worker"]
    assert worker["healthcheck"]["test"][-3:] == ["-m", "streams.app.probe", "ready"]
    assert worker["environment"]["GAR_WORKER__WEB_ENABLED"] == "true"


def test_startup_order_waits_for_health(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    for name in ("topic-init", "worker", "fleet", "carbon-feed", "load-generator"):
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy", name
        if name != "topic-init":
            assert depends["topic-init"]["condition"] == "service_completed_successfully", name
    assert services["worker"]["depends_on"]["influxdb"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["influxdb"]["condition"] == "service_healthy"
    assert services["load-generator"]["depends_on"]["worker"]["condition"] == "service_healthy"


def test_app_containers_reach_the_compose_services(compose_config: dict[str, Any]) -> None:
    worker = compose_config["services"]["worker"]
    assert worker["environment"]["GAR_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert worker["environment"]["GAR_INFLUX__URL"] == "http://influxdb:8086"
    assert worker["environment"]["GAR_INFLUX__BUCKET"] == "gar"  # InfluxDB 2: a bucket name
    influxdb = compose_config["services"]["influxdb"]
    assert str(influxdb["image"]).startswith("influxdb:2")
    assert influxdb["environment"]["DOCKER_INFLUXDB_INIT_BUCKET"] == "gar"
    assert worker["build"]["dockerfile"] == "docker/Dockerfile"
    assert (REPO_ROOT / "docker" / "Dockerfile").is_file()


def test_grafana_provisioning_is_mounted(compose_config: dict[str, Any]) -> None:
    grafana = compose_config["services"]["grafana"]
    mounts = {
        str(v).split(":")[1] if isinstance(v, str) else v["target"] for v in grafana["volumes"]
    }
    assert {"/etc/grafana/provisioning", "/var/lib/grafana/dashboards"} <= mounts
    assert (REPO_ROOT / "grafana" / "provisioning" / "datasources").is_dir()
    # the Flux datasource reads the same variables as the workers
    for var in ("GAR_INFLUX__URL", "GAR_INFLUX__TOKEN", "GAR_INFLUX__ORG", "GAR_INFLUX__BUCKET"):
        assert (
            grafana["environment"][var] == compose_config["services"]["worker"]["environment"][var]
        )


def test_ports_on_localhost_come_from_the_default_override() -> None:
    merged = _config(COMPOSE_FILE, PORTS_FILE)["services"]
    published = {name: merged[name]["ports"] for name in ("kafka", "influxdb", "grafana")}
    assert published == {  # v1 renders short syntax: host_ip:published:target/protocol
        "kafka": ["127.0.0.1:19092:19092/tcp"],
        "influxdb": ["127.0.0.1:8086:8086/tcp"],
        "grafana": ["127.0.0.1:3000:3000/tcp"],
    }


def test_the_local_override_is_host_network_only_with_local_images() -> None:
    main = _config(COMPOSE_FILE)
    assert host_network_problems(main)  # bridge by default: what users with Docker run
    local = _config(COMPOSE_FILE, LOCAL_FILE)
    assert host_network_problems(local) == []
    services = local["services"]
    assert all("ports" not in s for s in services.values())  # refused with host networking
    for name in ("topic-init", "worker", "fleet", "carbon-feed", "load-generator"):
        assert services[name]["image"] == "gar-streams:local", name
        assert services[name]["environment"]["GAR_KAFKA__BOOTSTRAP_SERVERS"].startswith(
            "127.0.0.1:"
        )
    for name in ("kafka", "influxdb"):
        assert services[name]["image"] == "gar-local/services:latest"
        assert services[name]["command"][:2] == ["dev", "serve"]
    assert services["worker"]["environment"]["GAR_WORKER__WEB_PORT"] == "0"
    assert services["grafana"]["profiles"] == ["grafana"]  # no image to run here


def test_feed_and_load_generator_replay_one_period_at_one_pace() -> None:
    services = _config(COMPOSE_FILE)["services"]
    feed, load = services["carbon-feed"]["command"], services["load-generator"]["command"]
    # the load generator's default start, both at one pace
    assert "--trace-start=default" in feed and not any(a.startswith("--start") for a in load)
    assert "--speedup=1200" in feed and "--speedup=1200" in load
    for name in ("carbon-feed", "load-generator"):
        assert services[name]["depends_on"]["worker"]["condition"] == "service_healthy"
    # requests start once the feed's first readings are on the broker
    ready = next(a.split("=", 1)[1] for a in feed if a.startswith("--ready-file="))
    assert services["carbon-feed"]["healthcheck"]["test"] == ["CMD", "test", "-f", ready]
    assert services["load-generator"]["depends_on"]["carbon-feed"]["condition"] == "service_healthy"
