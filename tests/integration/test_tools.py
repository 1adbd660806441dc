"""Round trips through the real broker: client, produce, carbon-feed and fleet.

Each test gets its own topic prefix (``settings`` fixture) and consumer group.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from support.realdata import correctness, real_catalog

from streams.client import GarClient
from streams.config import Settings
from streams.core.inputs import Completion, Request
from streams.core.intensity import IntensityReading
from streams.ingress import (
    IngressContext,
    Rejected,
    parse_completion,
    parse_intensity,
    parse_request,
)
from streams.kafka.admin import ensure_topics
from streams.kafka.clients import client_kwargs
from streams.kafka.topics import dispatch_topic_name, topic_specs
from streams.schema import dispatch_record, encode
from streams.tools.carbon_feed import carbon_dir, feed_carbon, merged_events
from streams.tools.fleet import run_fleet
from streams.tools.fleet_model import FleetModel
from streams.tools.kafka_io import MissingTopicsError, producer
from streams.tools.produce import produce_requests, trace_requests

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
Records = list[ConsumerRecord[bytes, bytes]]


async def create_topics(settings: Settings) -> None:
    await ensure_topics(
        settings,
        [s for s in topic_specs(settings, real_catalog().model_names) if "changelog" not in s.name],
    )


async def read_n(settings: Settings, topic: str, n: int, timeout_s: float = 60.0) -> Records:
    """The first ``n`` records of ``topic`` (no consumer group); fails on timeout."""
    consumer = AIOKafkaConsumer(
        topic, **client_kwargs(settings.kafka), auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    out: Records = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < n and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=300)).values():
                out.extend(recs)
        # Anything beyond n would be a duplicate: give it a moment to show up.
        for recs in (await consumer.getmany(timeout_ms=500)).values():
            out.extend(recs)
    finally:
        await consumer.stop()
    assert len(out) >= n, f"only {len(out)} of {n} records on {topic}"
    return out


def requests(n: int, run_id: str) -> list[Request]:
    return trace_requests(Settings(), real_catalog(), n, seed=7, run_id=run_id, days=1.0)


async def test_client_submits_keyed_validated_requests(settings: Settings) -> None:
    await create_topics(settings)
    reqs = requests(40, "cli")
    async with GarClient(settings) as gar:
        first = await gar.submit(reqs[0])
        rest = await gar.submit_many(reqs[1:])
        with pytest.raises(ValueError, match="out_of_range"):
            gar.encode(Request("x", "t", "d", 0, None, "eu", 1_700_000_000_000))
    assert [first, *rest] == [r.request_id for r in reqs]
    got = await read_n(settings, settings.topics.name("requests"), 40)
    assert len(got) == 40
    ctx = IngressContext.from_catalog(real_catalog())
    parsed = {p.request_id: p for p in (parse_request(r.value, ctx) for r in got)}
    assert parsed == {r.request_id: r for r in reqs}
    partitions: dict[bytes, set[int]] = {}
    for rec in got:
        assert rec.key is not None
        assert rec.key.decode() == parsed[orjson_id(rec.value)].tenant
        partitions.setdefault(rec.key, set()).add(rec.partition)
    assert all(len(p) == 1 for p in partitions.values())  # one tenant, one partition


def orjson_id(raw: bytes | None) -> str:
    import orjson

    return str(orjson.loads(raw or b"{}")["request_id"])


def test_client_helper_builds_fresh_requests() -> None:
    a = GarClient.request(
        tenant="acme", dataset="gsm8k", input_tokens=10, client_region="eu", deny_regions=["GB"]
    )
    b = GarClient.request(tenant="acme", dataset="gsm8k", input_tokens=10, client_region="eu")
    assert a.request_id != b.request_id and a.deny_regions == ("GB",)
    assert isinstance(parse_request(GarClient.encode(a)), Request)


async def test_produce_with_poison_accounts_for_every_message(settings: Settings) -> None:
    await create_topics(settings)
    reqs = requests(600, "prod")
    stats = await produce_requests(settings, reqs, poison_fraction=0.2, seed=5)
    assert stats.sent == 600 and 60 < stats.poisoned < 180
    got = await read_n(settings, settings.topics.name("requests"), 600)
    assert len(got) == 600
    ctx = IngressContext.from_catalog(real_catalog())
    outcomes = [parse_request(r.value, ctx) for r in got]
    reasons = Counter(str(o.reason) for o in outcomes if isinstance(o, Rejected))
    assert reasons == stats.expected_reasons
    ok = [o for o in outcomes if isinstance(o, Request)]
    assert len(ok) == 600 - stats.poisoned
    assert {o.request_id for o in ok} <= {r.request_id for r in reqs}


async def test_produce_respects_rate_and_duration_bounds(settings: Settings) -> None:
    await create_topics(settings)
    stats = await produce_requests(
        settings, requests(2000, "bound"), rate_per_s=200.0, duration_s=1.0
    )
    # Bounded by the duration, not the count; roughly rate x duration messages.
    assert 0 < stats.sent < 2000


async def test_produce_refuses_missing_topics(settings: Settings) -> None:
    with pytest.raises(MissingTopicsError):
        await produce_requests(settings, requests(1, "none"))


async def test_carbon_feed_publishes_zone_keyed_events(settings: Settings) -> None:
    await create_topics(settings)
    start = 1_685_577_600_000
    events = merged_events(
        carbon_dir(Settings()), ["GB", "DE-LU"], start_ms=start, end_ms=start + 24 * 3_600_000
    )
    stats = await feed_carbon(settings, events)
    assert stats.sent == 48 and stats.per_zone == Counter({"GB": 24, "DE-LU": 24})
    got = await read_n(settings, settings.topics.name("carbon-intensity"), 48)
    assert len(got) == 48
    by_zone: dict[str, list[int]] = {}
    for rec in got:
        reading = parse_intensity(rec.value)
        assert isinstance(reading, IntensityReading)
        assert rec.key == reading.zone.encode()
        by_zone.setdefault(reading.zone, []).append(reading.ts_ms)
    for stamps in by_zone.values():
        assert stamps == sorted(stamps) and stamps[0] == start


async def test_carbon_feed_time_compression(settings: Settings) -> None:
    await create_topics(settings)
    start = 1_685_577_600_000
    events = merged_events(
        carbon_dir(Settings()), ["GB"], start_ms=start, end_ms=start + 4 * 3_600_000
    )
    # One event hour per 0.1 s of wall time: 4 readings take about 0.3 s, not zero.
    stats = await feed_carbon(settings, events, speedup=36_000.0, origin_ms=start)
    assert stats.sent == 4 and stats.elapsed_s >= 0.25


async def test_carbon_feed_is_caught_up_once_the_readings_due_at_start_are_sent(
    settings: Settings,
) -> None:
    await create_topics(settings)
    start = 1_685_577_600_000
    events = merged_events(
        carbon_dir(Settings()), ["GB"], start_ms=start, end_ms=start + 4 * 3_600_000
    )
    sent_when_caught_up: list[int] = []
    progress: list[int] = []
    # The clock starts one event hour ahead: two readings are due at once, two are paced.
    stats = await feed_carbon(
        settings,
        events,
        # one event hour per real second: a paced reading cannot fall due while the two due
        # at once are being sent, even on a loaded machine
        speedup=3_600.0,
        origin_ms=start + 3_600_000,
        on_progress=progress.append,
        on_caught_up=lambda: sent_when_caught_up.append(progress[-1]),
    )
    assert stats.sent == 4 and sent_when_caught_up == [2]


async def test_fleet_answers_every_dispatch_once(settings: Settings, unique_id: str) -> None:
    await create_topics(settings)
    catalog = real_catalog()
    reqs = requests(120, "fleet")
    prod = producer(settings)
    await prod.start()
    try:
        futures = []
        for i, req in enumerate(reqs):
            allowed = req.allow_models or catalog.model_names
            model = allowed[i % len(allowed)]
            region = catalog.region_names[i % 2]
            rec = dispatch_record(
                req,
                {
                    "model": model,
                    "region": region,
                    "candidate": catalog.candidate_index(model, region),
                    "policy": "gar-pd",
                    "reason": "optimal",
                },
            )
            futures.append(
                await prod.send(
                    dispatch_topic_name(settings, model), encode(rec), key=req.request_id.encode()
                )
            )
        await asyncio.gather(*futures)
        # One poison order: counted, skipped, never crashes the fleet.
        await prod.send_and_wait(dispatch_topic_name(settings, catalog.model_names[0]), b"{oops")
    finally:
        await prod.stop()
    sim = FleetModel(catalog, correctness())
    stats = await run_fleet(
        settings, sim, group_id=f"{unique_id}-a", max_messages=121, idle_timeout_s=20.0
    )
    assert (stats.consumed, stats.completed, stats.invalid) == (121, 120, 1)
    got = await read_n(settings, settings.topics.name("completions"), 120)
    assert len(got) == 120
    ctx = IngressContext.from_catalog(catalog)
    done = [parse_completion(r.value, ctx) for r in got]
    assert all(isinstance(c, Completion) for c in done)
    assert sorted(c.request_id for c in done if isinstance(c, Completion)) == sorted(
        r.request_id for r in reqs
    )
    # A second group replays the same dispatches: identical telemetry (idempotent).
    again = await run_fleet(
        settings, sim, group_id=f"{unique_id}-b", max_messages=121, idle_timeout_s=20.0
    )
    assert again.completed == 120
    got2 = await read_n(settings, settings.topics.name("completions"), 240)
    all_values = Counter(r.value for r in got2)
    assert all(all_values[r.value] == 2 for r in got)


async def test_produce_paced_by_event_time(settings: Settings) -> None:
    await create_topics(settings)
    reqs = requests(30, "pace")
    span_ms = reqs[-1].ts_ms - reqs[0].ts_ms
    speedup = span_ms / 500.0  # the whole trace in about half a second of wall time
    stats = await produce_requests(settings, reqs, speedup=speedup)
    assert stats.sent == 30 and stats.elapsed_s >= 0.4
    got = await read_n(settings, settings.topics.name("requests"), 30)
    assert len(got) == 30
