"""The benchmarks' workload: real trace requests spread over tenants that balance the partitions."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import orjson
from aiokafka.partitioner import DefaultPartitioner

from streams.app.catalog import load_catalog
from streams.config import Settings
from streams.core.catalog import Catalog
from streams.core.inputs import Request


def balanced_tenants(n: int, partitions: int) -> list[str]:
    """``n`` tenant names spread evenly over ``partitions`` by Kafka's key partitioner, so
    per-partition load (and two-worker scaling) is not an artefact of key hashing."""
    part = DefaultPartitioner()
    ids = list(range(partitions))
    per: dict[int, list[str]] = {p: [] for p in ids}
    i = 0
    want = -(-n // partitions)
    while sum(len(v) for v in per.values()) < n:
        name = f"bt-{i:05d}"
        i += 1
        p = part(name.encode(), ids, ids)
        if len(per[p]) < want:
            per[p].append(name)
    out = [t for k in range(want) for p in ids for t in per[p][k : k + 1]]
    return out[:n]


@dataclass
class Workload:
    settings: Settings
    catalog: Catalog
    requests: list[Request]
    values: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value)

    @property
    def mean_bytes(self) -> float:
        return sum(len(v) for _, v in self.values) / max(len(self.values), 1)


def build_workload(
    settings: Settings, n: int, tenants: int = 100, run_id: str | None = None
) -> Workload:
    """``n`` real trace requests (the eval trace builder: real questions, diurnal arrivals,
    allow-lists) re-assigned round-robin to ``tenants`` partition-balanced tenants."""
    from streams.schema.records import encode, request_record
    from streams.tools.produce import trace_requests

    catalog = load_catalog(settings)
    names = balanced_tenants(tenants, settings.topics.partitions)
    reqs = trace_requests(settings, catalog, n, run_id=run_id or uuid.uuid4().hex[:6], days=1.0)
    reqs = [replace(r, tenant=names[i % len(names)]) for i, r in enumerate(reqs)]
    values = [(r.tenant.encode(), encode(request_record(r))) for r in reqs]
    return Workload(settings, catalog, reqs, values)


async def publish_policy_and_carbon(settings: Settings, wl: Workload) -> None:
    """The eval scenario's policy (``publish_policy``) and the real hourly carbon intensity for
    the trace's period."""
    from streams.orchestration.demo import HOUR_MS
    from streams.tools.carbon_feed import carbon_dir, feed_carbon, merged_events

    await publish_policy(settings, wl)
    start_ms = min(r.ts_ms for r in wl.requests) // HOUR_MS * HOUR_MS - 2 * HOUR_MS
    hours = (max(r.ts_ms for r in wl.requests) - start_ms) // HOUR_MS + 2
    zones = sorted({r.zone for r in wl.catalog.regions})
    await feed_carbon(
        settings,
        merged_events(
            carbon_dir(settings), zones, start_ms=start_ms, end_ms=start_ms + hours * HOUR_MS
        ),
    )


async def publish_policy(
    settings: Settings, wl: Workload, n_requests: int | None = None, days: float = 1.0
) -> None:
    """The eval scenario's policy as ``gar demo`` publishes it, for ``n_requests`` (default:
    the workload's) over ``days``, its total budget spread over the bench tenants."""
    from streams.orchestration.demo import demo_policy
    from streams.tools.kafka_io import producer

    policy = demo_policy(settings, n_requests or len(wl.requests), days=days)
    cfg = policy["config"]
    n_tenants = len({r.tenant for r in wl.requests})
    cfg["default_budget_g"] = sum(cfg["budgets_g"].values()) / max(n_tenants, 1)
    cfg["budgets_g"] = {}
    prod = producer(settings)
    await prod.start()
    try:
        await prod.send_and_wait(
            settings.topics.name(settings.topics.policy), orjson.dumps(policy), key=b"global"
        )
    finally:
        await prod.stop()


async def publish_requests(settings: Settings, values: Sequence[tuple[bytes, bytes]]) -> float:
    """Publish as fast as the producer goes (pre-load); returns msg/s."""
    from streams.tools.kafka_io import producer

    topic = settings.topics.name(settings.topics.requests)
    prod = producer(settings, linger_ms=5, max_batch_size=512 * 1024)
    await prod.start()
    t0 = time.perf_counter()
    try:
        pending = []
        for key, value in values:
            pending.append(await prod.send(topic, value, key=key))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await prod.stop()
    return len(values) / (time.perf_counter() - t0)
