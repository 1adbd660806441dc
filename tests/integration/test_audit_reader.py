"""Reading the decisions topic from the real broker: whole topic, offset and event-time ranges,
and no consumer group anywhere."""

from __future__ import annotations

import asyncio

import pytest
from support.decision_run import T0_MS, make_run, publish

from streams.audit.reader import ReadRange, _valid_offset, read_decisions
from streams.config import Settings

pytestmark = pytest.mark.integration


async def _groups(settings: Settings) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    from streams.kafka.clients import client_kwargs

    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka))
    await admin.start()
    try:
        return {g[0] for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()


def test_reads_ranges_without_a_group(settings: Settings, unique_id: str) -> None:
    topic = f"test.{unique_id}.decisions"
    run = make_run(batches=4, per_batch=10)
    publish(settings, topic, run.records)
    groups_before = asyncio.run(_groups(settings))

    rows = read_decisions(settings, ReadRange(), topic=topic, idle_ms=300)
    assert len(rows) == len(run.records)
    assert {r.record["request_id"] for r in rows if r.record} == {
        r["request_id"] for r in run.records
    }
    for part in {r.partition for r in rows}:
        offs = [r.offset for r in rows if r.partition == part]
        assert offs == list(range(len(offs)))

    # offset range [2, 5) on every partition
    some = read_decisions(settings, ReadRange.parse("2:5"), topic=topic, idle_ms=300)
    parts = {r.partition for r in rows}
    assert sorted((r.partition, r.offset) for r in some) == [
        (p, o) for p in sorted(parts) for o in (2, 3, 4)
    ]

    # event time: the second and third batch only (batches are a minute apart)
    rng = ReadRange(start_ms=T0_MS + 60_000, end_ms=T0_MS + 180_000, lateness_ms=0)
    timed = read_decisions(settings, rng, topic=topic, idle_ms=300)
    want = [r["request_id"] for r in run.records if rng.wants_time(r["ts_ms"])]
    assert len(want) == 20
    assert sorted(r.record["request_id"] for r in timed if r.record) == sorted(want)

    # a range after the last record: offsets_for_times finds nothing -> nothing read, no hang
    later = read_decisions(settings, ReadRange(start_ms=T0_MS + 10**9), topic=topic, idle_ms=300)
    assert later == []

    assert asyncio.run(_groups(settings)) == groups_before  # the audit joined no group


def test_event_time_range_with_processing_time_stamps(settings: Settings, unique_id: str) -> None:
    """Kafka timestamps = publish time (years after the 2023 event times): the range must
    still come from the records' event time, not from offsets_for_times of the end."""
    topic = f"test.{unique_id}.decisions"
    run = make_run(batches=4, per_batch=10)
    publish(settings, topic, run.records, event_time=False)
    rng = ReadRange(start_ms=T0_MS + 60_000, end_ms=T0_MS + 180_000, lateness_ms=0)
    timed = read_decisions(settings, rng, topic=topic, idle_ms=300)
    want = sorted(r["request_id"] for r in run.records if rng.wants_time(r["ts_ms"]))
    assert sorted(r.record["request_id"] for r in timed if r.record) == want


def test_offsets_for_times_sentinels_mean_no_offset() -> None:
    class Found:
        def __init__(self, offset: int) -> None:
            self.offset = offset

    assert _valid_offset(None) is None
    assert _valid_offset(Found(-1)) is None
    assert _valid_offset(Found(7)) == 7
