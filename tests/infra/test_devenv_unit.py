"""Unit tests of the dev-services plumbing that need no running service."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streams.config import DevSettings, Settings
from streams.devenv import render_server_properties
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


def test_dev_settings_follow_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GAR_DEV__KAFKA_PORT", "29192")
    monkeypatch.setenv("GAR_DEV__STATE_DIR", str(tmp_path))
    dev = Settings().dev
    assert dev.kafka_port == 29192
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

    from streams.devenv import kafka

    dash_first = uuid.UUID(bytes=b"\xf8" + bytes(15))  # urlsafe base64 starts with '-'
    ids = iter([dash_first, uuid.UUID(int=1)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(ids))
    cid = kafka._new_cluster_id()
    assert not cid.startswith("-")
    assert len(cid) == 22
