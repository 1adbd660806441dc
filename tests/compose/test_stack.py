"""The docker-compose stack, built and run for real (``pytest -m compose``, minutes).

A private Docker engine (started and stopped by PID, host networking only) runs
docker-compose.yml with docker-compose.local.yml: images built here (streams/devenv/
docker_images.py), Kafka, InfluxDB, topic init, two workers, the fleet simulator, the carbon
feed and the load generator, on free loopback ports. The tests run in order on one stack:
healthchecks, a third worker joining mid-load, what came out, metrics, and ``down``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.paths import REPO_ROOT
from support.worker import read_all

from streams.app.catalog import load_catalog
from streams.config import InfluxSettings, Settings
from streams.devenv import free_port
from streams.devenv.compose_stack import ComposeStack, ContainerState
from streams.devenv.docker_engine import DockerEngine
from streams.devenv.docker_images import ImageBuilder
from streams.kafka.topics import TopicLayout
from streams.metrics.query import FluxClient

pytestmark = [pytest.mark.compose, pytest.mark.timeout(3600)]

# 6,000 requests over one event day at 360x: about 4 minutes of load at ~25 requests/s, long
# enough for a third worker to join while it runs.
REQUESTS, DAYS, SPEEDUP = 6_000, 1, 360
MAX_AGE_MS = 2 * 3_600_000  # the policy's intensity_max_age_ms


@dataclass
class StackRun:
    engine: DockerEngine
    stack: ComposeStack
    settings: Settings  # clients on the host, pointed at the stack's broker and store
    timings_s: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def lap(self, name: str, started: float) -> None:
        self.timings_s[name] = round(time.monotonic() - started, 1)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[StackRun]:
    t_all = time.monotonic()
    base = Settings()
    engine = DockerEngine(tmp_path_factory.mktemp("engine"))
    ports = {"kafka": free_port(), "controller": free_port(), "influx": free_port()}
    env = {
        "GAR_SHARED_DATA": str(shared_data),
        "GAR_COMPOSE_KAFKA_PORT": str(ports["kafka"]),
        "GAR_COMPOSE_KAFKA_CONTROLLER_PORT": str(ports["controller"]),
        "GAR_COMPOSE_INFLUX_PORT": str(ports["influx"]),
        "GAR_TRACE_REQUESTS": str(REQUESTS),
        "GAR_TRACE_DAYS": str(DAYS),
        "GAR_TRACE_SPEEDUP": str(SPEEDUP),
    }
    settings = base.model_copy(
        update={
            "kafka": base.kafka.model_copy(
                update={"bootstrap_servers": f"127.0.0.1:{ports['kafka']}"}
            ),
            "influx": InfluxSettings(url=f"http://127.0.0.1:{ports['influx']}"),
        }
    )
    stack = ComposeStack(engine, REPO_ROOT, f"gartest{uuid.uuid4().hex[:8]}", env)
    result = StackRun(engine, stack, settings)
    try:
        t0 = time.monotonic()
        engine.start()
        result.lap("engine start", t0)
        result.facts["storage driver"] = engine.storage_driver
        result.timings_s.update(ImageBuilder(engine, base.dev, REPO_ROOT).build_all().steps)
        t0 = time.monotonic()
        stack.up()
        result.lap("compose up (returns when started)", t0)
        yield result
    finally:
        with contextlib.suppress(Exception):
            stack.down()
        engine.stop()
        engine.remove()
        result.lap("whole run", t_all)
        print(f"\ncompose run: {json.dumps(result.timings_s)} {json.dumps(result.facts)}")


def _wait(run: StackRun, what: str, done: Any, timeout_s: float) -> list[ContainerState]:
    deadline = time.monotonic() + timeout_s
    while True:
        states = run.stack.containers()
        if done(states):
            return states
        if time.monotonic() >= deadline:
            logs = "\n".join(run.stack.logs(s, 30) for s in ("worker", "kafka", "influxdb"))
            raise AssertionError(f"{what}: {states}\n{logs}")
        time.sleep(2)


def _of(states: list[ContainerState], service: str) -> list[ContainerState]:
    return [s for s in states if s.service == service]


def _healthy(states: list[ContainerState], workers: int) -> bool:
    return (
        all(s.health == "healthy" for s in _of(states, "kafka") + _of(states, "influxdb"))
        and len(_of(states, "worker")) == workers
        and all(s.health == "healthy" for s in _of(states, "worker"))
    )


def test_every_healthcheck_turns_healthy(run: StackRun) -> None:
    t0 = time.monotonic()
    states = _wait(run, "healthchecks", lambda s: _healthy(s, 2), 600)
    run.lap("healthy after up", t0)
    assert [(s.status, s.exit_code) for s in _of(states, "topic-init")] == [("exited", 0)]
    with_check = {s.service for s in states if s.health is not None}
    assert with_check == {"kafka", "influxdb", "worker", "carbon-feed"}
    # the feed turns healthy once its first readings are on the broker; the load generator
    # waits for that
    states = _wait(run, "carbon feed", lambda s: _of(s, "carbon-feed")[0].health == "healthy", 300)
    for s in _of(states, "fleet") + _of(states, "carbon-feed"):
        assert s.status == "running", s


def _decided(run: StackRun, lay: TopicLayout) -> dict[str, list[Any]]:
    topics = [
        lay.requests,
        lay.decisions,
        lay.dead_letter,
        lay.carbon_intensity,
        *lay.dispatch.values(),
    ]
    return asyncio.run(read_all(run.settings, topics, lambda _: False, 5.0))


def _probe(run: StackRun, container: str) -> dict[str, Any]:
    out = run.engine.docker(["exec", container, "python", "-m", "streams.app.probe", "ready", "-v"])
    body: dict[str, Any] = json.loads(out.stdout)
    return body


_STATUS_JSON = (
    "import urllib.request; from streams.app.probe import probe_url; "
    "from streams.config import Settings; "
    "url = str(probe_url(Settings(), 'live')).replace('/healthz', '/status.json'); "
    "print(urllib.request.urlopen(url, timeout=10).read().decode())"
)


def _status(run: StackRun, container: str) -> dict[str, Any]:
    """The worker's /status.json, asked inside its container (the port it bound is there)."""
    out = run.engine.docker(["exec", container, "python", "-c", _STATUS_JSON])
    body: dict[str, Any] = json.loads(out.stdout)
    return body


def test_a_third_worker_joins_mid_load_and_every_request_is_decided_once_fresh(
    run: StackRun,
) -> None:
    lay = TopicLayout.from_settings(run.settings, load_catalog(run.settings).model_names)
    # Mid-load: a quarter of the requests decided, then scale out.
    deadline = time.monotonic() + 600
    while len(_decided(run, lay)[lay.decisions]) < REQUESTS // 4:
        assert time.monotonic() < deadline, run.stack.logs("load-generator")
        time.sleep(5)
    t0 = time.monotonic()
    run.stack.up(scale={"worker": 3}, services=["worker"], no_deps=True)
    _wait(run, "third worker", lambda s: _healthy(s, 3), 600)
    run.lap("third worker healthy after scale", t0)
    probes = {s.name: _probe(run, s.name) for s in _of(run.stack.containers(), "worker")}
    parts = [p["requests_partitions"] for p in probes.values()]
    assert sorted(p for ps in parts for p in ps) == list(range(run.settings.topics.partitions))
    assert all(parts) and all(p["control"]["caught_up"] for p in probes.values()), probes
    assert sorted(p["rebalances"] for p in probes.values())[-1] >= 2, probes  # a rebalance

    t0 = time.monotonic()
    _wait(run, "load generator done", lambda s: _of(s, "load-generator")[0].status == "exited", 900)
    (loadgen,) = _of(run.stack.containers(), "load-generator")
    assert loadgen.exit_code == 0, run.stack.logs("load-generator")
    deadline = time.monotonic() + 300
    while True:
        out = _decided(run, lay)
        ids = {orjson.loads(m.value)["request_id"] for m in out[lay.decisions]}
        if len(ids) >= len(out[lay.requests]) or time.monotonic() >= deadline:
            break
        time.sleep(5)
    run.lap("all decided after scale", t0)

    workers = _of(run.stack.containers(), "worker")
    per_worker = {s.name: _status(run, s.name)["throughput"]["decided"] for s in workers}
    run.facts["decided per worker (status pages)"] = sorted(per_worker.values())
    assert len(per_worker) == 3 and all(per_worker.values()), per_worker

    requested = [orjson.loads(m.value)["request_id"] for m in out[lay.requests]]
    decisions = [orjson.loads(m.value) for m in out[lay.decisions]]
    per_id = Counter(d["request_id"] for d in decisions)
    run.facts.update(requests=len(requested), decisions=len(decisions))
    assert len(requested) == len(set(requested)) == REQUESTS
    assert set(per_id) == set(requested), "requests lost"
    assert max(per_id.values()) == 1, [i for i, n in per_id.items() if n > 1][:10]
    assert out[lay.dead_letter] == []
    # Dispatched on each decision's model topic (at least once), with fresh intensity.
    dispatched = {(topic, m.key.decode()) for topic in lay.dispatch.values() for m in out[topic]}
    # A decision names the reading it was priced with by its offset (one control partition).
    assert {m.partition for m in out[lay.carbon_intensity]} == {0}
    reading_ts = {m.offset: orjson.loads(m.value)["ts_ms"] for m in out[lay.carbon_intensity]}
    stale = []
    for d in decisions:
        assert (lay.dispatch[d["model"]], d["request_id"]) in dispatched, d["request_id"]
        ts = reading_ts.get(d["intensity_offset"])
        fresh = not d["intensity_stale"] and ts is not None and 0 <= d["ts_ms"] - ts <= MAX_AGE_MS
        if not fresh:
            stale.append((d["request_id"], d["ts_ms"], d["intensity_stale"], ts))
    run.facts["stale decisions"] = len(stale)
    first_ms = min(d["ts_ms"] for d in decisions)
    assert stale == [], (first_ms, sorted(stale, key=lambda x: x[1])[:5])


def test_metrics_land_in_influxdb(run: StackRun) -> None:
    flux = FluxClient(run.settings.influx.model_copy(update={"bucket": "gar/autogen"}))
    decided = run.facts.get("decisions")
    query = (
        'from(bucket: "gar/autogen") |> range(start: -1d) '
        '|> filter(fn: (r) => r._measurement == "gar_decisions" and r._field == "count") '
        '|> group(columns: ["worker"]) |> sum()'
    )
    deadline = time.monotonic() + 120
    while True:
        per_worker = {s.labels["worker"]: sum(s.values) for s in flux.query(query)}
        if sum(per_worker.values()) == decided or time.monotonic() >= deadline:
            break
        time.sleep(2)
    run.facts["decisions per worker in InfluxDB"] = sorted(per_worker.values())
    assert sum(per_worker.values()) == decided, per_worker
    tags = (
        'from(bucket: "gar/autogen") |> range(start: -1d) |> filter(fn: (r) => r._field == "count")'
        ' |> group(columns: ["worker", "_measurement"]) |> count()'
    )
    seen = {
        (s.labels.get("worker"), s.labels.get("_measurement")): s.values for s in flux.query(tags)
    }
    assert len(per_worker) == 3 and all(per_worker.values()), (per_worker, seen)
    intensity = (
        'from(bucket: "gar/autogen") |> range(start: -1d) '
        '|> filter(fn: (r) => r._measurement == "gar_intensity" and r._field == "stale") '
    )
    points = flux.query(intensity + "|> group() |> count()")
    stale = flux.query(intensity + "|> filter(fn: (r) => r._value == true) |> group() |> count()")
    assert points and points[0].values[0] > 0, points
    # no zone was ever priced with the stale fallback
    assert sum(v for s in stale for v in s.values) == 0, stale


def test_down_leaves_no_container_process_or_mount(run: StackRun) -> None:
    t0 = time.monotonic()
    run.stack.down()
    run.lap("compose down", t0)
    assert run.stack.containers() == []
    assert run.stack.volumes() == []
    assert run.stack.networks() == []  # none was ever created: host networking only
    t0 = time.monotonic()
    run.engine.stop()
    assert run.engine.leftover_processes() == []
    assert run.engine.mounts() == []
    run.engine.remove()
    run.lap("engine stop and remove", t0)
    assert not run.engine.layout.root.exists()
