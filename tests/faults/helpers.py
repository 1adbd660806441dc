"""Shared machinery of the fault suite: worker subprocesses with metrics, offset-tracking
producers, an incremental topic reader and the one accounting rule every test checks.

The accounting rule: every input record on the requests topic ends as exactly one
decision or one dead letter. Inputs are identified by their (partition, offset) on the requests
topic, which both a decision (its partition and ``request_offset``) and a dead letter
(``source``) carry, so the
rule is checked without trusting request ids (a hostile input may have none).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from support.worker import SMALL_CATALOG, WorkerProc, settings_env, topic_partitions

from streams.config import Settings
from streams.core.intensity import IntensityReading
from streams.core.policy_config import PolicyConfig
from streams.kafka.admin import ensure_topics
from streams.kafka.topics import TopicLayout, topic_specs
from streams.schema import encode, intensity_record

MODELS = [m["name"] for m in SMALL_CATALOG["models"]]
T0_MS = 1_672_531_200_000
Item = tuple[bytes | None, bytes]
Pos = tuple[int, int]  # (partition, offset) on the requests topic
Worker = WorkerProc


def layout(settings: Settings, models: Sequence[str] = MODELS) -> TopicLayout:
    return TopicLayout.from_settings(settings, list(models))


def create_topics(settings: Settings, models: Sequence[str] = MODELS) -> None:
    asyncio.run(ensure_topics(settings, topic_specs(settings, list(models))))


async def alter_topic(settings: Settings, topic: str, configs: dict[str, str]) -> None:
    """Change a topic's configuration (e.g. ``max.message.bytes``) on the broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
        for _ in range(100):  # the broker applies a change asynchronously: wait to see it
            resource = ConfigResource(ConfigResourceType.TOPIC, topic, dict.fromkeys(configs))
            [response] = await admin.describe_configs([resource])
            now = {e[0]: e[1] for r in response.resources for e in r[4]}
            if all(now.get(k) == v for k, v in configs.items()):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
    finally:
        await admin.close()


def request(i: int, tenant: str, ts_ms: int, prefix: str = "req", **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "schema_version": 1,
            "request_id": f"{prefix}-{i:06d}",
            "tenant": tenant,
            "dataset": "gsm8k",
            "input_tokens": 120 + i % 50,
            "output_tokens_est": None,
            "client_region": "eu" if i % 2 else "us",
            "ts_ms": ts_ms,
            **extra,
        }
    )


def valid_items(
    n: int, tenants: int, start: int = 0, step_ms: int = 100, prefix: str = "req", **extra: Any
) -> list[Item]:
    out: list[Item] = []
    for i in range(start, start + n):
        tenant = f"tenant-{i % tenants}"
        out.append((tenant.encode(), request(i, tenant, T0_MS + i * step_ms, prefix, **extra)))
    return out


# -- worker processes -----------------------------------------------------------------------
def alive(worker: Worker) -> bool:
    return worker.proc.poll() is None


def start_worker(
    settings: Settings,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    loglevel: str = "info",
) -> Worker:
    """``gar worker`` with the test's Settings; metrics off unless ``extra_env`` enables them."""
    env = settings_env(settings)
    env.update(extra_env or {})
    gar = Path(sys.executable).with_name("gar")
    out = log_path.open("ab")
    proc = subprocess.Popen(
        [str(gar), "worker", "--loglevel", loglevel], env=env, stdout=out, stderr=subprocess.STDOUT
    )
    return Worker(proc, log_path)


def influx_env(url: str, worker_tag: str, **overrides: str) -> dict[str, str]:
    env = {
        "GAR_INFLUX__ENABLED": "true",
        "GAR_INFLUX__URL": url,
        "GAR_INFLUX__WORKER_TAG": worker_tag,
        "GAR_INFLUX__FLUSH_INTERVAL_MS": "300",
    }
    env.update({f"GAR_INFLUX__{k.upper()}": v for k, v in overrides.items()})
    return env


# -- producing with positions ---------------------------------------------------------------
async def produce_tracked(
    settings: Settings,
    topic: str,
    items: Iterable[Item],
    pace: Callable[[int], float] | None = None,
    idempotent: bool = False,
) -> list[Pos]:
    """Publish in order; return each item's (partition, offset). ``pace(i)`` seconds of sleep
    after item ``i`` (None: as fast as possible). ``idempotent``: a send retried across a
    leader change is not appended twice (else the retry is a second input at another offset)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
        acks="all",
        enable_idempotence=idempotent,
    )
    await producer.start()
    try:
        futs = []
        for i, (key, value) in enumerate(items):
            futs.append(await producer.send(topic, value=value, key=key))
            if pace is not None and (delay := pace(i)) > 0:
                await asyncio.sleep(delay)
        metas = await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


def produce(settings: Settings, topic: str, items: Sequence[Item]) -> list[Pos]:
    return asyncio.run(produce_tracked(settings, topic, items))


# -- reading --------------------------------------------------------------------------------
class TopicReader:
    """Reads topics from the beginning, incrementally (one consumer for a whole test)."""

    def __init__(
        self, settings: Settings, topics: Sequence[str], lay: TopicLayout | None = None
    ) -> None:
        self._bootstrap = settings.kafka.bootstrap_servers
        self.topics = list(topics)
        self.records: dict[str, list[Any]] = {t: [] for t in topics}
        self._consumer: AIOKafkaConsumer | None = None
        self._lay = lay
        self._accounted: set[Pos] = set()  # request positions with an outcome, incrementally
        self._dead_unread: list[bytes] = []  # dead letters not parsed yet (see ``accounted``)
        self.decided_ids: set[str] = set()
        self.dispatched_ids: set[str] = set()
        self._dispatch_topics = set(lay.dispatch.values()) if lay is not None else set()

    async def start(self) -> None:
        c = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await c.start()
        tps: list[TopicPartition] = []
        for t in self.topics:
            parts = await topic_partitions(c, t, tries=100)
            tps.extend(TopicPartition(t, p) for p in parts)
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        self._consumer = c

    @property
    def accounted(self) -> set[Pos]:
        """Request positions with an outcome. Dead letters are parsed when this is read, not
        when polled: a test timing the worker (the poison flood) then does not spend this
        2-core machine's CPU on them while it measures."""
        if self._dead_unread:
            requests = self._lay.requests if self._lay is not None else ""
            for value in self._dead_unread:
                src = orjson.loads(value)["source"]
                if src.get("topic") == requests:
                    self._accounted.add((int(src["partition"]), int(src["offset"])))
            self._dead_unread.clear()
        return self._accounted

    async def poll(self, timeout_ms: int = 300) -> int:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=20_000)
        n = 0
        for tp, msgs in batches.items():
            self.records[tp.topic].extend(msgs)
            n += len(msgs)
            if self._lay is not None:
                self._track(tp.topic, msgs)
        return n

    def _track(self, topic: str, msgs: Sequence[Any]) -> None:
        assert self._lay is not None
        if topic == self._lay.decisions:
            for m in msgs:
                d = orjson.loads(m.value)
                self.accounted.add(request_position(m.partition, d))
                self.decided_ids.add(d["request_id"])
        elif topic in self._dispatch_topics:
            self.dispatched_ids.update(m.key.decode() for m in msgs)
        elif topic == self._lay.dead_letter:
            self._dead_unread.extend(m.value for m in msgs)

    async def until(self, done: Callable[[TopicReader], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await self.poll()
            if done(self):
                return True
        return False

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


def read_until(
    settings: Settings,
    topics: Sequence[str],
    done: Callable[[TopicReader], bool],
    timeout_s: float = 90.0,
    lay: TopicLayout | None = None,
) -> TopicReader:
    async def run() -> TopicReader:
        r = TopicReader(settings, topics, lay)
        await r.start()
        try:
            await r.until(done, timeout_s)
        finally:
            await r.stop()
        return r

    return asyncio.run(run())


# -- accounting -----------------------------------------------------------------------------
@dataclass
class Accounting:
    """Outcomes per input position, and what was emitted more than once downstream."""

    decided: dict[Pos, set[bytes]] = field(default_factory=dict)  # distinct decision bytes
    dead: dict[Pos, list[dict[str, Any]]] = field(default_factory=dict)
    decision_records: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dead_letter_records(self) -> int:
        return sum(len(v) for v in self.dead.values())

    def outcomes(self) -> Counter[Pos]:
        c: Counter[Pos] = Counter()
        for pos in self.decided:
            c[pos] += 1
        for pos in self.dead:
            c[pos] += 1
        return c


def request_position(partition: int, decision: dict[str, Any]) -> tuple[int, int]:
    """(partition, offset) of the request a decision decided: decisions.v2 records its offset
    in the decision's own partition (requests and decisions are co-partitioned)."""
    if "request_offset" in decision:
        return partition, int(decision["request_offset"])
    src = decision["request_source"]
    return int(src["partition"]), int(src["offset"])


def account(reader: TopicReader, lay: TopicLayout) -> Accounting:
    acc = Accounting()
    # Log order (each partition by offset): a tenant's chain and a pooled mu scope's chain both
    # follow it; the order records were fetched in need not (a reconnect re-fetches).
    for m in sorted(reader.records[lay.decisions], key=lambda m: (m.partition, m.offset)):
        d = orjson.loads(m.value)
        acc.decided.setdefault(request_position(m.partition, d), set()).add(m.value)
        acc.decisions.append(d)
        acc.decision_records += 1
    for m in reader.records[lay.dead_letter]:
        d = orjson.loads(m.value)
        src = d["source"]
        if src.get("topic") != lay.requests:
            continue
        acc.dead.setdefault((int(src["partition"]), int(src["offset"])), []).append(d)
    return acc


def tenant_log_report(reader: TopicReader, lay: TopicLayout, request_id: str) -> str:
    """Diagnostics for a chain break at ``request_id``: that tenant's decisions in log order
    (partition, offset, log-append ms, tenant_seq, request id, request offset), the ones around
    each sequence jump, and any (partition, offset) read twice with different bytes."""
    msgs = sorted(reader.records[lay.decisions], key=lambda m: (m.partition, m.offset))
    seen: dict[tuple[int, int], bytes] = {}
    clashes = 0
    rows: list[tuple[int, int, int, int, str, Any]] = []
    tenant = None
    for m in msgs:
        if seen.setdefault((m.partition, m.offset), m.value) != m.value:
            clashes += 1
        d = orjson.loads(m.value)
        if d["request_id"] == request_id:
            tenant = d["tenant"]
        rows.append(
            (m.partition, m.offset, m.timestamp, d["tenant_seq"], d["request_id"], d["tenant"])
        )
    mine = [r for r in rows if r[5] == tenant]
    jumps = [i for i in range(1, len(mine)) if mine[i][3] != mine[i - 1][3] + 1]
    lines = [f"tenant {tenant}: {len(mine)} decisions, {clashes} offsets read with two values"]
    for i in jumps[:6]:
        lines.extend(f"  {r[:5]}" for r in mine[max(0, i - 2) : i + 2])
        lines.append("  --")
    return "\n".join(lines)


def changelog(settings: Settings, table: str) -> str:
    return f"{settings.app_id}-{table}-changelog"


def latest_tenant_states(settings: Settings) -> dict[str, dict[str, Any]]:
    """The newest tenant_state changelog value per tenant (read for 3 s; tombstones skipped)."""
    topic = changelog(settings, "tenant_state")
    r = read_until(settings, [topic], lambda _: False, 3.0)
    latest: dict[str, dict[str, Any]] = {}
    for m in r.records[topic]:
        if m.value is not None:
            st = orjson.loads(m.value)
            latest[st["tenant"]] = st
    return latest


def publish_policy(settings: Settings, config: PolicyConfig, name: str = "gar-pd") -> None:
    """Publish a policy on the policy topic and wait until the worker applied it. Only the
    fields that differ from the preset of the config's mode are sent (the parser fills in the
    rest from that preset), so the worker applies exactly ``config`` and the tests do not
    depend on every config field the core adds."""
    lay = layout(settings)
    fields = config.preset_overrides()
    record = {"schema_version": 1, "scope": "global", "policy_name": name, "config": fields}
    produce(settings, lay.policy, [(b"global", orjson.dumps(record))])
    topic = changelog(settings, "policy")

    def applied(r: TopicReader) -> bool:
        return any(
            orjson.loads(m.value)["config"]["version"] == config.version
            for m in r.records[topic]
            if m.value is not None
        )

    if not applied(read_until(settings, [topic], applied, 60.0)):
        raise AssertionError(
            f"policy {config.version} was not applied within 60 s\n"
            + policy_report(settings, lay, topic)
        )


async def group_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The worker group's committed offset per partition of ``topic`` (absent: none yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
    finally:
        await admin.close()
    return {tp.partition: int(o.offset) for tp, o in offsets.items() if tp.topic == topic}


def policy_report(settings: Settings, lay: TopicLayout, changelog_topic: str) -> str:
    """What a failed policy publication left: the policy topic and its changelog (offset,
    append time, version), the group's committed offsets on the policy topic, and the policy
    dead letters, for the failure message."""

    def version(value: bytes | None) -> str:
        try:
            return str(orjson.loads(value or b"null")["config"]["version"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return repr((value or b"")[:80])

    topics = [lay.policy, changelog_topic, lay.dead_letter]
    r = read_until(settings, topics, lambda _: False, 3.0)
    lines = [
        f"{t}: p{m.partition}@{m.offset} t={m.timestamp} {version(m.value)}"
        for t in topics[:2]
        for m in r.records[t]
    ]
    lines += [
        f"dead letter: {m.value[:300]!r}"
        for m in r.records[lay.dead_letter]
        if m.value is not None and b'"policy"' in m.value
    ]
    with contextlib.suppress(Exception):
        lines.append(
            f"committed on {lay.policy}: {asyncio.run(group_offsets(settings, lay.policy))}"
        )
    return "\n".join(lines)


def publish_intensity(settings: Settings, readings: Sequence[IntensityReading]) -> None:
    """Publish readings and wait until the worker's intensity table holds the newest one."""
    lay = layout(settings)
    produce(
        settings,
        lay.carbon_intensity,
        [(r.zone.encode(), encode(intensity_record(r))) for r in readings],
    )
    topic = changelog(settings, "intensity")
    want = {(r.zone, r.ts_ms) for r in readings}

    def done(r: TopicReader) -> bool:
        have = {
            (h["zone"], h["ts_ms"])
            for m in r.records[topic]
            if m.value is not None
            for h in orjson.loads(m.value)
        }  # value: the zone's recent readings
        return want <= have

    read_until(settings, [topic], done, 60.0)


def env_flag(name: str, default: int) -> int:
    """Counts can be scaled up for a long local run (e.g. GAR_FAULTS_REQUESTS=50000)."""
    return int(os.environ.get(name, default))
