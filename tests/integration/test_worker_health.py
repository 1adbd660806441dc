"""The worker's /healthz and /readyz on Faust's web server, asked of real ``gar worker``
processes on the local broker (port 0: each worker publishes the port it bound)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from support.worker import (
    WorkerProc,
    create_worker_topics,
    produce,
    read_outputs,
    request_bytes,
    settings_env,
    start_worker,
    worker_layout,
    worker_settings,
)

from streams.app.probe import probe, probe_url
from streams.config import Settings

pytestmark = pytest.mark.integration
T0_MS = 1_685_577_600_000


def _web_settings(settings_factory: Any, catalog_path: Path, data_dir: Path) -> Settings:
    return worker_settings(
        settings_factory,
        catalog_path,
        web_enabled=True,
        web_port=0,
        data_dir=str(data_dir),
    )


def _answer(settings: Settings, check: str) -> tuple[int, dict[str, Any]]:
    url = probe_url(settings, "live" if check == "live" else "ready")
    return (0, {}) if url is None else probe(url, 2.0)


def _wait_status(
    settings: Settings, worker: WorkerProc, check: str, want: int, timeout_s: float = 90.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    status, body = 0, {}
    while time.monotonic() < deadline:
        status, body = _answer(settings, check)
        if status == want:
            return body
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited: {worker.log()[-2000:]}")
        time.sleep(0.3)
    raise AssertionError(f"{check}: {status} {body} (wanted {want}) {worker.log()[-2000:]}")


def _gar_probe(settings: Settings, check: str) -> int:
    gar = Path(sys.executable).with_name("gar")
    return subprocess.run(
        [str(gar), "probe", check], env=settings_env(settings), capture_output=True, timeout=30
    ).returncode


def test_live_then_ready_with_control_caught_up_and_partitions_split(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    one = _web_settings(settings_factory, catalog_path, tmp_path / "w1")
    two = one.model_copy(
        update={"worker": one.worker.model_copy(update={"data_dir": tmp_path / "w2"})}
    )
    create_worker_topics(one)
    lay = worker_layout(one)
    # A policy published before the start: ready means it is applied.
    policy = {
        "schema_version": 1,
        "scope": "global",
        "policy_name": "gar-pd",
        "config": {"version": "v-health"},
    }
    asyncio.run(produce(one, lay.policy, [(b"global", orjson.dumps(policy))]))

    first = start_worker(one, tmp_path / "w1.log")
    second: WorkerProc | None = None
    try:
        assert _gar_probe(one, "ready") == 1  # not ready before it even listens
        _wait_status(one, first, "live", 200)
        body = _wait_status(one, first, "ready", 200)
        assert body["assigned"] and body["control"]["caught_up"], body
        assert body["control"]["behind"] == {}
        assert body["requests_partitions"] == [0, 1, 2, 3]
        assert _gar_probe(one, "live") == 0 and _gar_probe(one, "ready") == 0
        # The status page is on the same server, on the port the worker bound.
        status_url = str(probe_url(one, "live")).replace("/healthz", "/status.json")
        code, page = probe(status_url, 5.0)
        assert code == 200 and page["policy"]["version"] == "v-health", page
        bound = urlsplit(status_url).port
        assert f"status http://127.0.0.1:{bound}/status" in first.log()  # the ready line

        # A second worker in the group: both ready again, the partitions split between them.
        second = start_worker(two, tmp_path / "w2.log")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            a, b = _answer(one, "ready"), _answer(two, "ready")
            if a[0] == b[0] == 200 and a[1]["requests_partitions"] and b[1]["rebalances"] >= 1:
                mine, theirs = a[1]["requests_partitions"], b[1]["requests_partitions"]
                if sorted(mine + theirs) == [0, 1, 2, 3]:
                    break
            time.sleep(0.3)
        else:
            raise AssertionError(f"no split: {a} {b} {second.log()[-2000:]}")
        assert a[1]["rebalances"] >= 2  # the first worker gave partitions up and got them back

        # Ready workers route: the requests become decisions under the published policy.
        items = [
            (f"t{i % 3}".encode(), request_bytes(i, f"t{i % 3}", T0_MS + i)) for i in range(40)
        ]
        asyncio.run(produce(one, lay.requests, items))
        out = read_outputs(one, len(items))
        versions = {orjson.loads(m.value)["policy_version"] for m in out[lay.decisions]}
        assert len(out[lay.decisions]) >= len(items) and versions == {"v-health"}
    finally:
        for w in (second, first):
            if w is not None:
                w.stop()
    # Stopped: nothing answers, and the probe says so.
    assert _answer(one, "live")[0] == 0
    assert _gar_probe(one, "live") == 1
