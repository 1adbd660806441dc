"""Unit tests of the dev-services plumbing that need no running service."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streams.config import DevSettings, Settings
from streams.devenv import (
    KafkaCluster,
    cluster_ports,
    render_influxdb_conf,
    render_server_properties,
    services,
)
from streams.devenv.health import PortTakenError, ensure_port_free
from streams.devenv.process import ManagedProcess


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_server_properties_for_a_tiny_test_broker(tmp_path: Path) -> None:
    dev = DevSettings(kafka_port=29092, kafka_controller_port=29093)
    props = _props(render_server_properties(dev, tmp_path / "data"))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.cleaner.enable"] == "true"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"


def test_cluster_nodes_share_a_quorum_and_replicate_three_times(tmp_path: Path) -> None:
    dev = DevSettings(kafka_cluster_port=29100, state_dir=tmp_path)
    assert cluster_ports(dev) == [(29100, 29101), (29102, 29103), (29104, 29105)]
    cluster = KafkaCluster(dev)
    assert cluster.bootstrap_servers == "127.0.0.1:29100,127.0.0.1:29102,127.0.0.1:29104"
    voters = "1@127.0.0.1:29101,2@127.0.0.1:29103,3@127.0.0.1:29105"
    for i, node in enumerate(cluster.nodes, start=1):
        props = _props(render_server_properties(dev, node.data_dir, node.node))
        assert props["node.id"] == str(i) and props["controller.quorum.voters"] == voters
        assert props["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{29098 + 2 * i},CONTROLLER://127.0.0.1:{29099 + 2 * i}"
        )
        assert props["log.dirs"] == str(tmp_path / "cluster" / f"node-{i}" / "data")
        assert props["default.replication.factor"] == "3"
        assert props["min.insync.replicas"] == "2"
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.min.isr"] == "2"
        assert node.node.cluster_id_file == tmp_path / "cluster" / "cluster.id"
        assert node.process.name == f"cluster-{i}"


def test_the_cluster_is_started_only_when_named(tmp_path: Path) -> None:
    dev = DevSettings(state_dir=tmp_path)
    assert [s.name for s in services(dev)] == ["kafka", "metrics"]
    assert [s.name for s in services(dev, ["cluster"])] == ["cluster"]
    with pytest.raises(ValueError, match="unknown services"):
        services(dev, ["zookeeper"])


def test_influxdb_conf_for_a_private_local_server(tmp_path: Path) -> None:
    import tomllib

    dev = DevSettings(metrics_port=28086)
    conf = tomllib.loads(render_influxdb_conf(dev, tmp_path))
    assert conf["reporting-disabled"] is True  # never phones home
    assert conf["bind-address"] == "127.0.0.1:0"  # backup RPC: any free loopback port
    assert conf["http"]["bind-address"] == "127.0.0.1:28086"
    assert conf["http"]["flux-enabled"] is True and conf["http"]["auth-enabled"] is False
    assert conf["meta"]["dir"] == str(tmp_path / "meta")
    assert conf["data"]["dir"] == str(tmp_path / "data")
    assert conf["data"]["wal-dir"] == str(tmp_path / "wal")
    assert conf["monitor"]["store-enabled"] is False  # no _internal database growing


def test_dev_settings_follow_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GAR_DEV__KAFKA_PORT", "29192")
    monkeypatch.setenv("GAR_DEV__STATE_DIR", str(tmp_path))
    monkeypatch.setenv("GAR_DEV__METRICS_PORT", "29086")
    dev = Settings().dev
    assert dev.kafka_port == 29192 and dev.metrics_port == 29086
    assert dev.state_dir == tmp_path


def test_pid_file_of_a_foreign_process_is_ignored(tmp_path: Path) -> None:
    # Our own PID is alive but its command line lacks the marker: treat as stale, never signal.
    process = ManagedProcess("x", tmp_path / "x.pid", tmp_path / "x.log", marker="no-such-marker")
    process.pid_file.write_text(f"{os.getpid()}\n")
    assert process.pid() is None
    assert not process.pid_file.exists()
    assert process.stop(timeout_s=1) is False


def test_managed_process_start_stop(tmp_path: Path) -> None:
    marker = str(tmp_path / "sleeper-marker")
    process = ManagedProcess("sleeper", tmp_path / "s.pid", tmp_path / "s.log", marker=marker)
    code = "import sys, time; print('up', flush=True); time.sleep(60)"
    pid = process.spawn([sys.executable, "-c", code, marker])
    process.wait_until(lambda: "up" in process.log_tail(), timeout_s=20)
    assert process.pid() == pid
    assert process.stop(timeout_s=10)
    assert process.pid() is None
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0


def test_a_taken_port_is_refused() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(PortTakenError, match="taken"):
            ensure_port_free("127.0.0.1", port, grace_s=0.3)
    ensure_port_free("127.0.0.1", port, grace_s=0.3)  # closed: free again


def test_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """``kafka-storage format -t -X...`` reads a leading '-' as an option (CI failed once)."""
    import uuid

    from streams.devenv import broker

    dash_first = uuid.UUID(bytes=b"\xf8" + bytes(15))  # urlsafe base64 starts with '-'
    ids = iter([dash_first, uuid.UUID(int=1)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(ids))
    cid = broker._new_cluster_id()
    assert not cid.startswith("-")
    assert len(cid) == 22
