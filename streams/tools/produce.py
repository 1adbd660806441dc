"""``gar produce``: replay real requests onto the requests topic at a chosen pace.

Requests come from the evaluation trace builder (``streams.eval.trace``): real questions of the
shared correctness data, diurnal arrivals per client region, tenants by weight. Request ids get
a run prefix so repeated runs are not deduplicated away by the router. Pacing is a fixed rate
(``rate_per_s``) or an event-time replay clock (``speedup``); ``poison_fraction`` replaces that
share of messages with hostile variants (``streams.tools.poison``).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from streams.config import Settings
from streams.core.catalog import Catalog
from streams.core.inputs import Request
from streams.schema.records import encode, request_record
from streams.tools.kafka_io import BatchedSender, producer, require_topics
from streams.tools.pacing import RateLimiter, ReplayClock
from streams.tools.poison import poison

CHUNK = 500


@dataclass
class ProduceStats:
    sent: int = 0
    poisoned: int = 0
    elapsed_s: float = 0.0
    expected_reasons: Counter[str] = field(default_factory=Counter)
    per_tenant: Counter[str] = field(default_factory=Counter)

    @property
    def rate_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def correctness_files(settings: Settings) -> list[Path]:
    """The data directory's correctness files; ``DataDirError`` if it has none."""
    from streams.data.sample import check_data_dir

    check_data_dir(settings.data.dir)
    return sorted((settings.data.dir / "correctness").glob("*.csv.gz"))


def trace_requests(
    settings: Settings,
    catalog: Catalog,
    count: int,
    *,
    seed: int = 0,
    run_id: str | None = None,
    days: float = 7.0,
    start_ms: int | None = None,
    datasets: tuple[str, ...] | None = None,
    tenants: int | None = None,
) -> list[Request]:
    """``count`` requests from the real data; ids are ``<run_id>-<n>``. ``tenants``: that many
    tenants with Zipf shares (None: the trace's three), so keys spread over more partitions."""
    from streams.data.correctness import load_correctness
    from streams.eval.trace import TraceOptions, build_trace, zipf_tenants

    if start_ms is None:
        start_ms = default_trace_start_ms(settings, catalog, days)
    data = load_correctness(correctness_files(settings))
    opts = TraceOptions(
        n_requests=count, start_ms=start_ms, days=days, seed=seed, datasets=datasets
    )
    if tenants:
        opts = replace(opts, tenants=zipf_tenants(tenants))
    trace = build_trace(data, catalog, opts)
    prefix = run_id or uuid.uuid4().hex[:8]
    return [replace(r, request_id=f"{prefix}-{i:07d}") for i, r in enumerate(trace.requests)]


def default_trace_start_ms(settings: Settings, catalog: Catalog, days: float = 7.0) -> int:
    """Where the load generator's trace starts unless told: day 150 of the carbon data of the
    catalog's zones (the carbon feed starts there too, so requests find fresh intensity)."""
    from streams.data.carbon import load_carbon_dir
    from streams.eval.trace import default_start_ms

    zones = load_carbon_dir(
        settings.data.dir / "carbon" / "electricitymaps-hourly-2023",
        sorted({r.zone for r in catalog.regions}),
    )
    return default_start_ms(
        [int(z.ts_ms[0]) for z in zones.values()], [int(z.ts_ms[-1]) for z in zones.values()], days
    )


async def produce_requests(
    settings: Settings,
    requests: Sequence[Request],
    *,
    rate_per_s: float | None = None,
    speedup: float | None = None,
    duration_s: float | None = None,
    poison_fraction: float = 0.0,
    seed: int = 0,
    on_progress: Callable[[int], None] | None = None,
    producer_options: dict[str, Any] | None = None,
) -> ProduceStats:
    """Publish ``requests`` (keyed by tenant); stops at the end or after ``duration_s``."""
    topic = settings.topics.name(settings.topics.requests)
    await require_topics(settings, [topic])
    rng = random.Random(seed)
    stats = ProduceStats()
    limiter = RateLimiter(rate_per_s)
    clock = ReplayClock(requests[0].ts_ms, speedup) if speedup and requests else None
    sender = BatchedSender(producer(settings, **(producer_options or {})), CHUNK, on_progress)
    t0 = time.monotonic()
    try:
        async with sender:
            for req in requests:
                if duration_s is not None and time.monotonic() - t0 >= duration_s:
                    break
                if clock is not None:
                    await clock.wait_for(req.ts_ms)
                else:
                    await limiter.wait_for(stats.sent)
                record = request_record(req)
                if poison_fraction > 0 and rng.random() < poison_fraction:
                    value, reason = poison(record, rng)
                    stats.poisoned += 1
                    stats.expected_reasons[str(reason)] += 1
                else:
                    value = encode(record)
                await sender.send(topic, value, req.tenant.encode())
                stats.sent += 1
                stats.per_tenant[req.tenant] += 1
    finally:
        stats.elapsed_s = time.monotonic() - t0
    return stats
