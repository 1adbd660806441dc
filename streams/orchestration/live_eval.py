"""``gar eval --live``: drive a real ``gar worker`` with the evaluation trace and compare its
decisions with the offline run of the same policy on the same trace.

The worker runs as a subprocess on topics of its own (unique prefix and app id) with the
scenario's catalog; the scenario's ``PolicyConfig`` is published on the policy topic first.
No fleet runs, so the worker's estimators stay at the catalog priors: the offline side is
``offline_records(..., feedback=False)``.

Why the publisher waits (the one source of divergence, removed by construction): the offline
loop prices a micro-batch of ``batch_ms`` with the readings up to the batch's FIRST request
(``simulate``), while the worker reads intensity on a side input. So a reading is published only
after every earlier request has been decided, and requests only after the readings due before
them are in the worker's intensity table; "due" uses the offline batch start, not the request's
own time (a batch that straddles an hour is priced with the older hour, as offline).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from streams.config import Settings
from streams.core import IntensityReading, PolicyConfig, Request
from streams.eval.drive import Comparison, Event, compare_decisions, offline_records
from streams.eval.runner import HOME_SUFFIX
from streams.eval.scenario import Scenario
from streams.eval.simulate import intensity_readings, restrict_to_home
from streams.kafka.admin import delete_topics, ensure_topics
from streams.kafka.clients import client_kwargs
from streams.kafka.topics import TopicLayout, changelog_topic_name, topic_specs
from streams.orchestration.demo import child_env
from streams.schema import encode, intensity_record, request_record


class LiveError(RuntimeError):
    """The live run could not complete (worker died, policy rejected, timeout)."""


@dataclass
class LiveResult:
    policy: str
    comparison: Comparison
    dead_letters: list[dict[str, Any]]
    elapsed_s: float
    prefix: str
    decisions_per_model_region: dict[str, int]
    decisions_per_mu_scope: dict[str, int]
    """Online decisions priced with each scope's pooled mu (``mu_pooled``; empty: none)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "topic_prefix": self.prefix,
            "elapsed_s": self.elapsed_s,
            "decisions_per_model_region": self.decisions_per_model_region,
            "decisions_per_mu_scope": self.decisions_per_mu_scope,
            "dead_letters": self.dead_letters[:20],
            **self.comparison.to_dict(),
        }


def live_requests(scn: Scenario, policy: str) -> list[Request]:
    reqs = scn.trace.requests
    return restrict_to_home(reqs, scn.home) if policy.endswith(HOME_SUFFIX) else list(reqs)


def paced_events(scn: Scenario, requests: list[Request]) -> Iterator[Event]:
    """Like ``drive.trace_events``, but a reading is due before a request when it is at or
    before the start of the request's offline micro-batch (see the module docstring)."""
    ts = scn.trace.ts_ms
    batch_of = (ts - ts[0]) // scn.settings.batch_ms  # as in eval.simulate.simulate
    first = np.flatnonzero(np.concatenate(([True], np.diff(batch_of) != 0)))
    batch_start = ts[first[np.searchsorted(first, np.arange(len(ts)), side="right") - 1]]
    zones = {r.zone: scn.zones[r.zone] for r in scn.catalog.regions}
    readings = intensity_readings(zones, int(ts[0]), int(ts[-1]))
    j = 0
    for i, req in enumerate(requests):
        while j < len(readings) and readings[j].ts_ms <= int(batch_start[i]):
            yield "carbon-intensity", readings[j]
            j += 1
        yield "requests", req


def policy_record(config: PolicyConfig, name: str) -> bytes:
    """Only the fields that differ from the config's mode preset (the parser fills in the
    rest from that preset)."""
    fields = config.preset_overrides()
    return orjson.dumps(
        {"schema_version": 1, "scope": "global", "policy_name": name, "config": fields}
    )


def live_settings(
    base: Settings, run_id: str, catalog_path: Path, policy: str, partitions: int
) -> Settings:
    """The run's private topics with the scenario's requests ``partitions`` (the scopes of
    pooled duals, as the offline run partitions the tenants)."""
    return base.model_copy(
        update={
            "app_id": f"gar-eval-live-{run_id}",
            "topics": base.topics.model_copy(
                update={"prefix": f"eval-live.{run_id}.", "partitions": partitions}
            ),
            "worker": base.worker.model_copy(
                update={"catalog_path": catalog_path, "policy": policy}
            ),
        }
    )


def worker_env(settings: Settings) -> dict[str, str]:

    env = child_env(settings)
    env.update(
        {
            "GAR_WORKER__POLICY": settings.worker.policy,
            "GAR_INFLUX__ENABLED": "false",  # a check run, not production traffic
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class _Watcher:
    """Reads the worker's outputs (decisions, dead letters, intensity/policy changelogs)."""

    def __init__(self, settings: Settings, topics: list[str]) -> None:
        from aiokafka import AIOKafkaConsumer

        self.topics = topics
        self.records: dict[str, list[Any]] = {t: [] for t in topics}
        self.consumer = AIOKafkaConsumer(
            **client_kwargs(settings.kafka),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def start(self) -> None:
        from aiokafka import TopicPartition

        await self.consumer.start()
        tps: list[TopicPartition] = []
        for t in self.topics:
            parts = None
            for _ in range(100):
                parts = self.consumer.partitions_for_topic(t)
                if parts:
                    break
                await self.consumer._client.force_metadata_update()
                await asyncio.sleep(0.1)
            if not parts:
                raise LiveError(f"no metadata for topic {t}")
            tps.extend(TopicPartition(t, p) for p in parts)
        cluster = self.consumer._client.cluster
        for _ in range(100):  # fresh topics: wait for leaders (else noisy fetch retries)
            if all((cluster.leader_for_partition(tp) or -1) >= 0 for tp in tps):
                break
            await self.consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)

    async def until(
        self, done: Callable[[], bool], timeout_s: float, what: str, alive: Callable[[], None]
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise LiveError(f"timed out waiting for {what}")
            alive()
            batch = await self.consumer.getmany(timeout_ms=100, max_records=10_000)
            for tp, msgs in batch.items():
                self.records[tp.topic].extend(msgs)

    async def stop(self) -> None:
        await self.consumer.stop()


async def _publish_policy(
    producer: Any,
    watch: _Watcher,
    lay: TopicLayout,
    policy_cl: str,
    cfg: PolicyConfig,
    policy: str,
    timeout_s: float,
    alive: Callable[[], None],
) -> None:
    """Publish the scenario's policy and wait until the worker has applied it."""
    await producer.send_and_wait(
        lay.policy, policy_record(cfg, policy.removesuffix(HOME_SUFFIX)), key=b"global"
    )

    def policy_applied() -> bool:
        if watch.records[lay.dead_letter]:
            raise LiveError(f"policy rejected: {watch.records[lay.dead_letter][0].value!r}")
        return any(
            m.value is not None and orjson.loads(m.value)["config"]["version"] == cfg.version
            for m in watch.records[policy_cl]
        )

    await watch.until(policy_applied, timeout_s, "the worker to apply the policy", alive)


async def _drive(
    settings: Settings,
    scn: Scenario,
    policy: str,
    worker: subprocess.Popen[bytes],
    timeout_s: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from aiokafka import AIOKafkaProducer

    lay = TopicLayout.from_settings(settings, scn.catalog.model_names)
    intensity_cl = changelog_topic_name(settings, "intensity")
    policy_cl = changelog_topic_name(settings, "policy")
    watch = _Watcher(settings, [lay.decisions, lay.dead_letter, intensity_cl, policy_cl])
    producer = AIOKafkaProducer(**client_kwargs(settings.kafka), linger_ms=2)

    def alive() -> None:
        if worker.poll() is not None:
            raise LiveError(f"the worker exited with code {worker.returncode}")

    def outputs() -> int:
        return len(watch.records[lay.decisions]) + len(watch.records[lay.dead_letter])

    def decided(n: int) -> Callable[[], bool]:
        return lambda: outputs() >= n

    applied: set[tuple[str, int]] = set()

    def readings_applied(want: set[tuple[str, int]]) -> Callable[[], bool]:
        def done() -> bool:
            for m in watch.records[intensity_cl]:
                if m.value is not None:
                    applied.update((h["zone"], h["ts_ms"]) for h in orjson.loads(m.value))
            watch.records[intensity_cl].clear()
            return want <= applied

        return done

    await producer.start()
    await watch.start()
    try:
        await _publish_policy(producer, watch, lay, policy_cl, scn.config, policy, timeout_s, alive)
        sent = 0
        pending_readings: set[tuple[str, int]] = set()
        last = "requests"
        for kind, item in paced_events(scn, live_requests(scn, policy)):
            if kind == "carbon-intensity":
                assert isinstance(item, IntensityReading)
                if last == "requests" and sent:
                    await producer.flush()
                    await watch.until(decided(sent), timeout_s, f"{sent} decisions", alive)
                await producer.send(
                    lay.carbon_intensity, encode(intensity_record(item)), key=item.zone.encode()
                )
                pending_readings.add((item.zone, item.ts_ms))
            else:
                assert isinstance(item, Request)
                if pending_readings:
                    await producer.flush()
                    await watch.until(
                        readings_applied(pending_readings),
                        timeout_s,
                        "the intensity readings to be applied",
                        alive,
                    )
                    pending_readings = set()
                await producer.send(
                    lay.requests, encode(request_record(item)), key=item.tenant.encode()
                )
                sent += 1
            last = kind
        await producer.flush()
        await watch.until(decided(sent), timeout_s, f"{sent} decisions", alive)
        decisions = [orjson.loads(m.value) for m in watch.records[lay.decisions]]
        dead = [orjson.loads(m.value) for m in watch.records[lay.dead_letter]]
        return decisions, dead
    finally:
        await producer.stop()
        await watch.stop()


def run_live(
    base: Settings,
    scn: Scenario,
    policy: str,
    *,
    work_dir: Path,
    timeout_s: float = 120.0,
    keep_topics: bool = False,
) -> LiveResult:
    """Create private topics, start a worker, publish the paced trace, collect and compare."""

    run_id = uuid.uuid4().hex[:10]
    work_dir.mkdir(parents=True, exist_ok=True)
    catalog_path = work_dir / f"catalog-{run_id}.json"
    scn.catalog.dump(catalog_path)
    settings = live_settings(
        base, run_id, catalog_path, policy.removesuffix(HOME_SUFFIX), scn.settings.partitions
    )
    specs = topic_specs(settings, scn.catalog.model_names)
    asyncio.run(ensure_topics(settings, specs))
    gar = Path(sys.executable).with_name("gar")
    log_path = work_dir / f"worker-{run_id}.log"
    t0 = time.monotonic()
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [str(gar), "worker"], env=worker_env(settings), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        try:
            online, dead = asyncio.run(_drive(settings, scn, policy, worker, timeout_s))
        except LiveError as exc:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise LiveError(f"{exc}; worker log {log_path}:\n{tail}") from None
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        if not keep_topics:
            with contextlib.suppress(Exception):
                asyncio.run(delete_topics(settings, [s.name for s in specs]))
    elapsed = time.monotonic() - t0
    offline = offline_records(scn, policy, feedback=False)
    chosen = Counter(f"{r['model']}@{r['region']}" for r in online)
    return LiveResult(
        policy,
        compare_decisions(offline, online),
        dead,
        elapsed,
        settings.topics.prefix,
        dict(chosen.most_common()),
        dict(sorted(Counter(str(r["mu_scope"]) for r in online if "mu_scope" in r).items())),
    )
