"""The topic layout of the control plane, derived from one Settings object.

Every topic (including the Faust table changelogs) is created explicitly with the partition count
its consumers need: Faust co-partitions a table with the stream that updates it, so requests,
completions, decisions and the tenant-keyed changelogs must all have the same count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from streams.config import Settings

DAY_MS = 86_400_000
_ILLEGAL = re.compile(r"[^A-Za-z0-9._-]")
# Retention and the time index go by arrival, never by a producer's clock: a replayed 2023 trace
# stamped with its event time would be older than any retention and deleted at the next check.
# Event time stays in the payload's ``ts_ms`` (docs/architecture.md, "Record timestamps").
TIMESTAMP_TYPE = "LogAppendTime"

# Table names: also the middle part of Faust's changelog topic names ``<app_id>-<table>-changelog``.
TENANT_TABLE = "tenant_state"
DEDUPE_TABLE = "dedupe"
INTENSITY_TABLE = "intensity"
POLICY_TABLE = "policy"
ESTIMATOR_TABLE = "estimators"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compact: bool = False
    retention_ms: int | None = None
    role: str = ""
    config: dict[str, str] = field(default_factory=dict)

    def topic_configs(self) -> dict[str, str]:
        cfg = {
            "cleanup.policy": "compact" if self.compact else "delete",
            "message.timestamp.type": TIMESTAMP_TYPE,
        }
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        cfg.update(self.config)
        return cfg


def dispatch_topic_name(settings: Settings, model: str) -> str:
    """``<prefix>dispatch.<model>``; characters Kafka rejects in topic names become ``_``."""
    return settings.topics.name(settings.topics.dispatch_prefix + _ILLEGAL.sub("_", model))


def changelog_topic_name(settings: Settings, table: str) -> str:
    return f"{settings.app_id}-{table}-changelog"


@dataclass(frozen=True, slots=True)
class TopicLayout:
    """Resolved topic names for one app instance."""

    requests: str
    completions: str
    carbon_intensity: str
    policy: str
    decisions: str
    contexts: str
    dead_letter: str
    dispatch: dict[str, str]  # model name -> topic
    partitions: int
    control_partitions: int

    @classmethod
    def from_settings(cls, settings: Settings, models: Iterable[str]) -> TopicLayout:
        t = settings.topics
        return cls(
            requests=t.name(t.requests),
            completions=t.name(t.completions),
            carbon_intensity=t.name(t.carbon_intensity),
            policy=t.name(t.policy),
            decisions=t.name(t.decisions),
            contexts=t.name(t.contexts),
            dead_letter=t.name(t.dead_letter),
            dispatch={m: dispatch_topic_name(settings, m) for m in models},
            partitions=t.partitions,
            control_partitions=settings.worker.control_partitions,
        )


def topic_specs(settings: Settings, models: Iterable[str]) -> list[TopicSpec]:
    """All topics the app reads or writes, with partitions and cleanup policy."""
    lay = TopicLayout.from_settings(settings, models)
    p, cp = lay.partitions, lay.control_partitions
    specs = [
        TopicSpec(lay.requests, p, retention_ms=7 * DAY_MS, role="requests (key tenant)"),
        TopicSpec(lay.completions, p, retention_ms=7 * DAY_MS, role="telemetry (key tenant)"),
        TopicSpec(
            lay.decisions,
            p,
            retention_ms=30 * DAY_MS,
            role="audit (key tenant)",
            config={"compression.type": settings.topics.decisions_compression_type},
        ),
        # Never compacted; kept as long as the decisions referencing it (a context unchanged
        # for worker.context_republish_s is written again) plus a day.
        TopicSpec(
            lay.contexts,
            1,
            retention_ms=31 * DAY_MS,
            role="routing contexts (key digest)",
            config={"compression.type": "zstd"},
        ),
        TopicSpec(lay.dead_letter, p, retention_ms=30 * DAY_MS, role="rejected inputs"),
        TopicSpec(lay.carbon_intensity, cp, retention_ms=30 * DAY_MS, role="intensity (key zone)"),
        TopicSpec(lay.policy, cp, compact=True, role="policy changes (key scope)"),
    ]
    dp = settings.topics.dispatch_partition_count()
    specs += [
        TopicSpec(name, dp, retention_ms=DAY_MS, role=f"dispatch for {model} (key request id)")
        for model, name in lay.dispatch.items()
    ]
    # Faust changelogs: tenant-keyed tables are co-partitioned with requests; GlobalTables use a
    # single partition (Faust's documented workaround for GlobalTable recovery loops).
    changelogs = (
        (TENANT_TABLE, p, "duals + budgets per tenant"),
        (DEDUPE_TABLE, p, "request id -> decision record"),
        (INTENSITY_TABLE, 1, "latest intensity per zone (the compacted latest view)"),
        (POLICY_TABLE, 1, "active policy, versioned"),
        (ESTIMATOR_TABLE, 1, "estimator snapshot per completions partition"),
    )
    specs += [
        TopicSpec(changelog_topic_name(settings, table), partitions, compact=True, role=role)
        for table, partitions, role in changelogs
    ]
    # With acks=all a write is acknowledged once this many replicas have it: on a cluster of
    # three with 2, one broker may be down and nothing acknowledged is lost.
    min_isr = {"min.insync.replicas": str(settings.topics.min_insync_replicas)}
    return [replace(s, config={**min_isr, **s.config}) for s in specs]
