"""Read a range of the decisions topic without any consumer group.

The auditor assigns partitions itself (``group_id=None``): it never joins, commits to or
rebalances the live router's group. Time ranges are event time (the record's ``ts_ms``);
``offsets_for_times`` on the Kafka timestamp only gives a starting point, moved back by the
allowed lateness because event time is not monotone in a partition. The end of a time range is found
from the records' own event time (a record at or past ``end + lateness`` ends its partition),
not from ``offsets_for_times``: Kafka timestamps may be append or processing time, and a
replay of an old trace would otherwise stop at offset 0. Two broker quirks are guarded:

* ``offsets_for_times`` may answer ``None`` or an offset of -1 for "no record at or after that
  time": the partition then has nothing from there on (start = stop = end).
* ``end_offsets`` can under-report (seen on Tansu after multi-record batches), so reaching it is
  not the end: a partition ends when its position has reached the stop offset AND a fetch
  comes back empty for ``idle_ms``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from streams.config import Settings

if TYPE_CHECKING:  # aiokafka is imported when a read starts (CLI start-up time)
    from aiokafka import TopicPartition


@dataclass(frozen=True)
class ReadRange:
    """Event-time range [start_ms, end_ms) and/or offset range [start_offset, end_offset)."""

    start_ms: int | None = None
    end_ms: int | None = None
    start_offset: int | None = None
    end_offset: int | None = None
    partitions: tuple[int, ...] | None = None
    lateness_ms: int = 3_600_000
    since_arrival_ms: int | None = None
    """Start at the first record that arrived at or after this time (the broker's
    LogAppendTime), whatever its payload: how the audit reads back context records."""

    @classmethod
    def parse(cls, offsets: str, partitions: tuple[int, ...] | None = None) -> ReadRange:
        """``FROM:TO`` (TO exclusive; either side may be empty)."""
        lo, sep, hi = offsets.partition(":")
        if not sep:
            raise ValueError(f"offset range must be FROM:TO, got {offsets!r}")
        return cls(
            start_offset=int(lo) if lo else None,
            end_offset=int(hi) if hi else None,
            partitions=partitions,
        )

    def wants_time(self, ts_ms: int | None) -> bool:
        if self.start_ms is None and self.end_ms is None:
            return True
        if ts_ms is None:
            return False
        return (self.start_ms is None or ts_ms >= self.start_ms) and (
            self.end_ms is None or ts_ms < self.end_ms
        )


@dataclass(frozen=True)
class DecisionRow:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    record: dict[str, Any] | None
    error: str | None = None
    raw: bytes | None = field(default=None, repr=False, compare=False)
    """The record's bytes as read (a decisions.v2 MAC is over them)."""

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


def parse_row(
    topic: str, partition: int, offset: int, ts: int, key: bytes | None, value: bytes | None
) -> DecisionRow:
    k = key.decode("utf-8", "replace") if key is not None else None
    try:
        rec = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        return DecisionRow(topic, partition, offset, ts, k, None, f"unparseable: {exc}", value)
    if not isinstance(rec, dict):
        return DecisionRow(topic, partition, offset, ts, k, None, "not a JSON object", value)
    return DecisionRow(topic, partition, offset, ts, k, rec, None, value)


def _valid_offset(found: Any) -> int | None:
    """``offsets_for_times`` answer -> offset, or None for the 'no such offset' sentinels."""
    if found is None:
        return None
    off = getattr(found, "offset", None)
    return off if isinstance(off, int) and off >= 0 else None


async def _seek_range(
    consumer: Any, topic: str, rng: ReadRange
) -> tuple[
    list[TopicPartition],
    dict[TopicPartition, int],
    dict[TopicPartition, int | None],
    dict[TopicPartition, int],
]:
    """Assign the range's partitions and seek each to its start; returns the partitions, the
    start and stop offsets (None: to the end) and the end offsets seen now (a snapshot)."""
    from aiokafka import TopicPartition

    parts = consumer.partitions_for_topic(topic)
    if not parts:
        # not subscribed, so the consumer's cache lacks the topic: ask the cluster
        cluster = await consumer._client.fetch_all_metadata()
        parts = cluster.partitions_for_topic(topic)
    if not parts:
        raise LookupError(f"topic {topic!r} does not exist or has no partitions")
    wanted = sorted(p for p in parts if rng.partitions is None or p in rng.partitions)
    tps = [TopicPartition(topic, p) for p in wanted]
    consumer.assign(tps)
    first = await consumer.beginning_offsets(tps)
    last = await consumer.end_offsets(tps)  # a snapshot, not trusted as the end
    start = {tp: max(first[tp], rng.start_offset or 0) for tp in tps}
    stop: dict[TopicPartition, int | None] = {
        tp: rng.end_offset if rng.end_offset is not None else None for tp in tps
    }
    since = None if rng.start_ms is None else max(rng.start_ms - rng.lateness_ms, 0)
    if rng.since_arrival_ms is not None:
        since = max(rng.since_arrival_ms, since or 0)
    if since is not None:
        found = await consumer.offsets_for_times(dict.fromkeys(tps, since))
        for tp in tps:
            off = _valid_offset(found.get(tp))
            start[tp] = max(start[tp], off if off is not None else last[tp])
    for tp in tps:
        consumer.seek(tp, start[tp])
    return tps, start, stop, dict(last)


# Long on purpose: one read loop whose end conditions (stop offset, event time past the range,
# end of the partition confirmed twice, a stalled partition) share the per-partition state.
async def _read(
    settings: Settings,
    topic: str,
    rng: ReadRange,
    idle_ms: int,
    on_progress: Callable[[int, int], None] | None,
) -> list[DecisionRow]:
    from aiokafka import AIOKafkaConsumer

    from streams.kafka.clients import client_kwargs

    consumer = AIOKafkaConsumer(
        **client_kwargs(settings.kafka),
        group_id=None,  # never touch the live group
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        tps, start, stop, last = await _seek_range(consumer, topic, rng)
        ends = {tp: last[tp] if (s := stop[tp]) is None else s for tp in tps}
        expected = sum(max(ends[tp] - start[tp], 0) for tp in tps)
        rows: list[DecisionRow] = []
        done = {tp for tp in tps if stop[tp] is not None and start[tp] >= ends[tp]}
        seen = 0

        def take(tp: Any, msgs: list[Any]) -> None:
            nonlocal seen
            for msg in msgs:
                s = stop[tp]
                if s is not None and msg.offset >= s:
                    done.add(tp)
                    return
                seen += 1
                row = parse_row(
                    tp.topic, tp.partition, msg.offset, msg.timestamp, msg.key, msg.value
                )
                ts = row.record.get("ts_ms") if row.record else None
                event_ms = ts if isinstance(ts, int) else None
                if (
                    rng.end_ms is not None
                    and event_ms is not None
                    and event_ms >= rng.end_ms + rng.lateness_ms
                ):
                    done.add(tp)  # event time is past the range by more than the lateness
                    return
                if row.record is None or rng.wants_time(event_ms):
                    rows.append(row)

        loop = asyncio.get_running_loop()
        last_data_s = dict.fromkeys(tps, loop.time())
        idle_s = idle_ms / 1000
        while len(done) < len(tps):
            batch = await consumer.getmany(
                *[tp for tp in tps if tp not in done], timeout_ms=idle_ms
            )
            now_s = loop.time()
            for tp, msgs in batch.items():
                if msgs:
                    last_data_s[tp] = now_s
                take(tp, msgs)
            for tp in tps:
                if tp in done:
                    continue
                pos = await consumer.position(tp)
                s = stop[tp]
                quiet_s = now_s - last_data_s[tp]
                if s is not None and pos >= s:
                    done.add(tp)
                elif pos >= last[tp] and quiet_s >= idle_s:
                    # At the end_offsets snapshot AND nothing fetched for idle_ms: only then
                    # is it the end (some brokers under-report end offsets). Re-ask once.
                    fresh = (await consumer.end_offsets([tp]))[tp]
                    if pos >= fresh:
                        done.add(tp)
                    else:
                        last[tp] = fresh
                elif quiet_s >= 5 * idle_s:
                    # below the snapshot yet nothing arrives (e.g. an open transaction holds the
                    # last stable offset back): give up rather than hang
                    done.add(tp)
            if on_progress is not None:
                on_progress(seen, max(expected, seen))
        rows.sort(key=lambda r: (r.partition, r.offset))
        return rows
    finally:
        await consumer.stop()


def read_decisions(
    settings: Settings,
    rng: ReadRange,
    *,
    topic: str | None = None,
    idle_ms: int = 1_000,
    progress: bool = False,
) -> list[DecisionRow]:
    """All decision records of ``rng`` in (partition, offset) order."""
    name = topic or settings.topics.name(settings.topics.decisions)
    if not progress:
        return asyncio.run(_read(settings, name, rng, idle_ms, None))
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"reading {name}", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return asyncio.run(_read(settings, name, rng, idle_ms, update))
