"""What the side-input handlers need, without a broker: views over plain dicts, a checkpointed
tenant map, counters, dead letters and metrics that record their lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.app.checkpoint import CheckpointedMap
from streams.app.counters import Counters
from streams.app.dead_letters import SideInputDeadLetters
from streams.app.router import RawMessage, tenant_map
from streams.app.views import Views
from streams.core.catalog import Catalog
from streams.core.policy_config import PolicyConfig
from streams.core.tenant import TenantState
from streams.ingress.context import IngressContext
from streams.metrics import Metrics, MetricsWriter
from support.metrics_sink import RecordingSink
from support.worker import SMALL_CATALOG

DEAD_LETTER_TOPIC = "t.dead-letter"
NOW_MS = 1_700_000_000_000


@dataclass
class SideInputWorld:
    policy_name: str = "gar-pd"
    catalog: Catalog = field(default_factory=lambda: Catalog.from_dict(SMALL_CATALOG))
    intensity_store: dict[bytes, bytes] = field(default_factory=dict)
    policy_store: dict[bytes, bytes] = field(default_factory=dict)
    estimator_store: dict[bytes, bytes] = field(default_factory=dict)
    tenant_store: dict[bytes, bytes] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    lines: RecordingSink = field(default_factory=RecordingSink)

    def __post_init__(self) -> None:
        self.views = Views(
            self.catalog,
            PolicyConfig(),
            self.policy_name,
            self.intensity_store,
            self.policy_store,
            self.estimator_store,
        )
        self.ingress = IngressContext.from_catalog(self.catalog)
        self.tenants: CheckpointedMap[TenantState] = tenant_map(self.tenant_store, "t.tenants")
        self.writer = MetricsWriter(self.lines, start=False, buffer_max_points=10**6)
        self.metrics = Metrics(self.writer)
        self.dead_letters = SideInputDeadLetters(DEAD_LETTER_TOPIC, self.counters, self.metrics)

    def metric_lines(self) -> list[str]:
        self.writer.close()
        return self.lines.lines


def message(topic: str, value: bytes | None, offset: int = 0, partition: int = 0) -> RawMessage:
    """Keyed by the value's tenant when it has one (tenant-keyed topics), else ``k``."""
    try:
        key = str(orjson.loads(value or b"")["tenant"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        key = b"k"
    return RawMessage(topic, partition, offset, None, key, value)


def records(prod: Any, topic: str) -> list[tuple[int, Any, Any]]:
    return list(prod.records(topic))
