"""The worker's Faust tables: tenant state and dedupe co-partitioned with requests, and the
replicated (GlobalTable) intensity, policy and estimator snapshots. Values are raw bytes; the
modules that own each table encode and decode them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.config import Settings
from streams.kafka.topics import (
    DEDUPE_TABLE,
    ESTIMATOR_TABLE,
    INTENSITY_TABLE,
    POLICY_TABLE,
    TENANT_TABLE,
    TopicLayout,
    changelog_topic_name,
)

TABLE_NAMES = (TENANT_TABLE, DEDUPE_TABLE, INTENSITY_TABLE, POLICY_TABLE, ESTIMATOR_TABLE)


@dataclass(frozen=True)
class WorkerTables:
    tenant: Any
    dedupe: Any
    intensity: Any
    policy: Any
    estimators: Any
    changelog: dict[str, str]  # table name -> its changelog topic

    @classmethod
    def create(cls, app: Any, settings: Settings, layout: TopicLayout) -> WorkerTables:
        raw: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,  # -> "raw" serializers
            # Used only when Faust creates a changelog itself (no `gar topics create` first).
            "extra_topic_configs": {
                "min.insync.replicas": str(settings.topics.min_insync_replicas)
            },
        }
        # GlobalTables: one partition (Faust's workaround for recovery loops with several
        # workers).
        glob: dict[str, Any] = {"partitions": 1, "recovery_buffer_size": 1, **raw}
        return cls(
            tenant=app.Table(TENANT_TABLE, partitions=layout.partitions, **raw),
            dedupe=app.Table(DEDUPE_TABLE, partitions=layout.partitions, **raw),
            intensity=app.GlobalTable(INTENSITY_TABLE, **glob),
            policy=app.GlobalTable(POLICY_TABLE, **glob),
            estimators=app.GlobalTable(ESTIMATOR_TABLE, **glob),
            changelog={
                n: changelog_topic_name(settings, n)
                for n in (
                    TENANT_TABLE,
                    DEDUPE_TABLE,
                    INTENSITY_TABLE,
                    POLICY_TABLE,
                    ESTIMATOR_TABLE,
                )
            },
        )

    def by_name(self) -> dict[str, Any]:
        return {
            TENANT_TABLE: self.tenant,
            DEDUPE_TABLE: self.dedupe,
            INTENSITY_TABLE: self.intensity,
            POLICY_TABLE: self.policy,
            ESTIMATOR_TABLE: self.estimators,
        }
