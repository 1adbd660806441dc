"""Policy and tenant operations (``gar policy ...``, ``gar tenants show``): read what the workers
hold from their changelogs and topics, and publish a policy the way the workers parse it.

The workers' own record of the policy in force is the policy table's changelog
(``<app_id>-policy-changelog``, key ``global``): the last policy record they accepted, with its
offset on the policy topic. A tenant's duals and budget window are the tenant table's changelog
(key ``t:<tenant>``), on the partition of the tenant's requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streams.app.scopes import scope_key, scope_name
from streams.audit.reader import DecisionRow, ReadRange, read_decisions
from streams.config import Settings
from streams.core.policy_config import PolicyConfig, split_version
from streams.core.tenant import TenantState
from streams.eval.partitioner import partition_of
from streams.ingress.policy import PolicyUpdate, parse_policy
from streams.ingress.rejected import Rejected
from streams.kafka.topics import POLICY_TABLE, TENANT_TABLE, changelog_topic_name

GLOBAL_KEY = b"global"


class PolicyFileError(ValueError):
    """A policy file the workers would reject; the message names the field and the reason."""


@dataclass(frozen=True)
class PolicyInForce:
    """What the workers route with: the policy record they last accepted (None: their default)."""

    config: PolicyConfig
    policy_name: str | None
    source_offset: int
    issued_at_ms: int | None
    published: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "policy_name": self.policy_name,
            "source_offset": self.source_offset,
            "issued_at_ms": self.issued_at_ms,
            "config": self.config.to_dict(),
        }


def _rows(settings: Settings, topic: str, rng: ReadRange | None = None) -> list[DecisionRow]:
    try:
        return read_decisions(settings, rng or ReadRange(), topic=topic, idle_ms=500)
    except LookupError:
        return []


def policy_in_force(settings: Settings) -> PolicyInForce:
    rows = _rows(settings, changelog_topic_name(settings, POLICY_TABLE))
    for row in reversed(rows):
        rec = row.record
        if row.key == GLOBAL_KEY.decode() and rec and isinstance(rec.get("config"), dict):
            return PolicyInForce(
                PolicyConfig.from_dict(rec["config"]),
                rec.get("policy_name"),
                int(rec.get("source_offset", -1)),
                rec.get("issued_at_ms"),
                True,
            )
    return PolicyInForce(PolicyConfig.default(), settings.worker.policy, -1, None, False)


def policy_record(data: Mapping[str, Any]) -> dict[str, Any]:
    """A file's JSON as a policy.v1 record: a whole record, or just its ``config`` object."""
    if "config" in data and "schema_version" in data:
        return dict(data)
    return {"schema_version": 1, "scope": "global", "config": dict(data)}


def validate_policy(record: Mapping[str, Any]) -> PolicyUpdate:
    """The record as the workers parse it; ``PolicyFileError`` with the field and reason."""
    parsed = parse_policy(orjson.dumps(record))
    if isinstance(parsed, Rejected):
        where = f"{parsed.field}: " if parsed.field else ""
        raise PolicyFileError(f"{where}{parsed.message} ({parsed.reason})")
    return parsed


def read_policy_file(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise PolicyFileError(f"{path}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyFileError(f"{path}: a policy is a JSON object")
    return policy_record(data)


def merged_record(current: PolicyInForce, record: Mapping[str, Any]) -> dict[str, Any]:
    """``record``'s config fields laid over the policy in force (tenant overrides merged per
    tenant), for ``gar policy set --merge``."""
    base = current.config.to_dict()
    cfg = dict(record["config"])
    overrides = {**base.pop("tenant_overrides"), **cfg.pop("tenant_overrides", {})}
    merged = {**base, **cfg, "tenant_overrides": overrides}
    if "version" not in cfg:
        del merged["version"]  # a new one is given when published
    out = {**record, "config": merged}
    if "policy_name" not in out and current.policy_name:
        out["policy_name"] = current.policy_name
    return out


def with_version(record: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """Give a record without ``config.version`` one (UTC time, sortable) and an issue time."""
    cfg = record["config"]
    if "version" not in cfg:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_ms / 1000))
        record = {**record, "config": {**cfg, "version": stamp}}
    record.setdefault("issued_at_ms", now_ms)
    return record


async def _publish(settings: Settings, record: Mapping[str, Any]) -> int:
    from streams.tools.kafka_io import producer, require_topics

    topic = settings.topics.name(settings.topics.policy)
    await require_topics(settings, [topic])
    prod = producer(settings)
    await prod.start()
    try:
        meta = await prod.send_and_wait(topic, orjson.dumps(record), key=GLOBAL_KEY)
    finally:
        await prod.stop()
    return int(meta.offset)


def publish_policy(settings: Settings, record: Mapping[str, Any]) -> int:
    """Publish to the policy topic; returns the record's offset."""
    return asyncio.run(_publish(settings, record))


def wait_applied(settings: Settings, offset: int, timeout_s: float) -> bool:
    """Whether a worker applied the policy record at ``offset`` within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if policy_in_force(settings).source_offset >= offset:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


@dataclass
class HistoryEntry:
    offset: int
    timestamp_ms: int
    version: str | None
    policy_name: str | None
    mode: str | None
    accepted: bool
    problem: str = ""
    changed: list[str] = field(default_factory=list)


def policy_history(settings: Settings) -> list[HistoryEntry]:
    """Every record still on the policy topic, oldest first, each checked as the workers
    check it, with the fields that changed from the previous accepted one."""
    out: list[HistoryEntry] = []
    previous: dict[str, Any] | None = None
    for row in _rows(settings, settings.topics.name(settings.topics.policy)):
        rec = row.record or {}
        raw_cfg = rec.get("config")
        cfg: dict[str, Any] = raw_cfg if isinstance(raw_cfg, dict) else {}
        entry = HistoryEntry(
            row.offset,
            row.timestamp_ms,
            cfg.get("version"),
            rec.get("policy_name"),
            cfg.get("mode"),
            True,
        )
        try:
            parsed = validate_policy(rec)
        except PolicyFileError as exc:
            entry.accepted, entry.problem = False, str(exc)
        else:
            now = parsed.config.to_dict()
            if previous is not None:
                entry.changed = sorted(k for k in now if now[k] != previous.get(k))
            previous = now
        out.append(entry)
    return out


@dataclass
class TenantView:
    tenant: str
    partition: int
    state: TenantState | None
    config: PolicyConfig  # the tenant's effective config
    floors: dict[str, float]
    budget_g: float | None
    window_ms: int
    last_decisions: list[dict[str, Any]]
    # Pooled accuracy duals (``mu_pooled``): the tenant's partition's scope state, whose mu
    # prices its requests (the tenant's own mu then stays empty).
    scope: TenantState | None = None

    def to_dict(self) -> dict[str, Any]:
        st = self.state
        return {
            "tenant": self.tenant,
            "partition": self.partition,
            "policy_version": self.config.version,
            "override": split_version(self.config.version)[1] is not None,
            "mode": self.config.mode,
            "latency_slo_ms": self.config.latency_slo_ms,
            "floors": self.floors,
            "budget_g": self.budget_g,
            "budget_window_ms": self.window_ms,
            "window_spend_g": None if st is None else st.window_spend_g,
            "window_requests": None if st is None else st.window_count,
            "duals": None if st is None else {"lambda": st.lam, "nu": st.nu, "mu": dict(st.mu)},
            "decisions_folded": None if st is None else st.seq,
            "watermark_ms": None if st is None else st.watermark_ms,
            "mu_scope": scope_name(self.partition) if self.config.mu_pooled else None,
            "scope": None
            if self.scope is None or not self.config.mu_pooled
            else {"mu": dict(self.scope.mu), "decisions_folded": self.scope.seq},
            "last_decisions": self.last_decisions,
        }


async def _end_offset(settings: Settings, topic: str, partition: int) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.kafka.clients import client_kwargs

    consumer = AIOKafkaConsumer(**client_kwargs(settings.kafka), group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


def tenant_view(settings: Settings, tenant: str, last: int, scan: int) -> TenantView:
    """``scan``: how many of the newest records of the tenant's decisions partition to search
    for its last decisions."""
    partition = partition_of(tenant.encode(), settings.topics.partitions)
    state = None
    rows = _rows(
        settings,
        changelog_topic_name(settings, TENANT_TABLE),
        ReadRange(partitions=(partition,)),
    )
    key, pooled_key = "t:" + tenant, "t:" + scope_key(partition)
    scope = None
    for row in reversed(rows):
        if row.record is None:
            continue
        if state is None and row.key == key:
            state = TenantState.from_dict(row.record)
        elif scope is None and row.key == pooled_key:
            scope = TenantState.from_dict(row.record)
        if state is not None and scope is not None:
            break
    cfg = policy_in_force(settings).config.for_tenant(tenant)
    topic = settings.topics.name(settings.topics.decisions)
    try:
        end = asyncio.run(_end_offset(settings, topic, partition))
    except Exception:  # no decisions topic yet: no decisions
        end = 0
    rng = ReadRange(start_offset=max(0, end - scan), end_offset=end, partitions=(partition,))
    decisions = _rows(settings, topic, rng) if end > 0 else []
    mine = [r.record for r in decisions if r.record and r.record.get("tenant") == tenant]
    shown = [
        {
            k: d.get(k)
            for k in (
                "request_id",
                "ts_ms",
                "dataset",
                "model",
                "region",
                "co2_g",
                "accuracy_est",
                "floor",
                "reason",
                "policy_version",
            )
        }
        for d in mine[-last:]
    ]
    floors = {d: f for d, f in cfg.floors.items()}
    return TenantView(
        tenant,
        partition,
        state,
        cfg,
        floors,
        cfg.budget_for(tenant),
        cfg.budget_window_ms,
        shown,
        scope,
    )
