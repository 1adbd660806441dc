"""``gar carbon-feed``: publish Electricity Maps exports as ``carbon-intensity.v1`` events.

Readings of the chosen zones are merged in event-time order and keyed by zone. Without a
``speedup`` they are published as fast as the broker takes them; with one, each reading is
published when an event-time replay clock reaches its hour. ``FeedWindow.for_trace`` (``gar
carbon-feed --trace-start``) lines a feed up with a load generator's trace: readings from one
hour before the trace start, and a clock one event hour ahead, so a ``gar produce --speedup``
run started at the same moment finds the reading of each request's hour already on the broker
(a feed that lags by the policy's ``intensity_max_age_ms``, 2 h by default, leaves every zone
stale). Event timestamps are the data's (``ts_ms`` = start of the hour, UTC).
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streams.config import Settings
from streams.data.carbon import carbon_files
from streams.ingress.carbon import EmissionFactor, IntensityEvent, iter_em_csv
from streams.schema.records import encode
from streams.tools.kafka_io import BatchedSender, producer, require_topics
from streams.tools.pacing import ReplayClock

CHUNK = 500
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class FeedWindow:
    """The readings a feed publishes and the origin of its paced clock."""

    first_ms: int | None  # the first reading (None: the data's first)
    end_ms: int | None  # exclusive; None: to the end of the data
    origin_ms: int | None  # the paced clock's origin (None: the first reading's hour)

    @property
    def hours(self) -> int | None:
        if self.first_ms is None or self.end_ms is None:
            return None
        return (self.end_ms - self.first_ms) // HOUR_MS

    @classmethod
    def from_start(cls, start_ms: int | None, hours: int | None = None) -> FeedWindow:
        """Plain: ``hours`` readings from ``start_ms``, the clock starting there."""
        end = None if start_ms is None or hours is None else start_ms + hours * HOUR_MS
        return cls(start_ms, end, start_ms)

    @classmethod
    def for_trace(cls, trace_start_ms: int, hours: int | None = None) -> FeedWindow:
        """Lined up with a trace: from the hour before it (its first requests have a reading)
        to ``hours`` after it, the clock one event hour ahead of the trace's."""
        end = None if hours is None else trace_start_ms + hours * HOUR_MS
        return cls(trace_start_ms - HOUR_MS, end, trace_start_ms + HOUR_MS)


@dataclass
class FeedStats:
    sent: int = 0
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None
    elapsed_s: float = 0.0
    per_zone: Counter[str] = field(default_factory=Counter)


def carbon_dir(settings: Settings) -> Path:
    return settings.data.dir / "carbon" / "electricitymaps-hourly-2023"


def merged_events(
    directory: Path,
    zones: Sequence[str],
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    emission_factor: EmissionFactor = "lifecycle",
) -> Iterator[IntensityEvent]:
    """Events of ``zones`` within ``[start_ms, end_ms)`` in (ts_ms, zone) order."""
    files = carbon_files(directory)
    unknown = [z for z in zones if z not in files]
    if unknown:
        raise KeyError(f"no Electricity Maps export for zone(s) {unknown}; have {sorted(files)}")

    def one(zone: str) -> Iterator[tuple[int, str, IntensityEvent]]:
        for e in iter_em_csv(files[zone], zone=zone, emission_factor=emission_factor):
            ts = e["ts_ms"]
            if (start_ms is None or ts >= start_ms) and (end_ms is None or ts < end_ms):
                yield ts, zone, e

    for _, _, event in heapq.merge(*(one(z) for z in zones)):
        yield event


async def feed_carbon(
    settings: Settings,
    events: Iterator[IntensityEvent],
    *,
    speedup: float | None = None,
    origin_ms: int | None = None,
    max_events: int | None = None,
    duration_s: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_caught_up: Callable[[], None] | None = None,
) -> FeedStats:
    """Publish ``events`` keyed by zone; bounded by ``max_events`` and ``duration_s``.
    ``on_caught_up`` is called once every reading due at the start is on the broker (paced: the
    first time the clock has to wait; unpaced: at the end), so a load generator can wait for it.
    """
    topic = settings.topics.name(settings.topics.carbon_intensity)
    await require_topics(settings, [topic])
    stats = FeedStats()
    clock: ReplayClock | None = None
    # Paced feeds wait for each ack, so a reading is on the broker when its hour starts.
    sender = BatchedSender(producer(settings), 1 if speedup else CHUNK, on_progress)
    t0 = time.monotonic()
    try:
        async with sender:
            for event in events:
                if max_events is not None and stats.sent >= max_events:
                    break
                if duration_s is not None and time.monotonic() - t0 >= duration_s:
                    break
                ts = event["ts_ms"]
                if speedup:
                    if clock is None:
                        clock = ReplayClock(origin_ms if origin_ms is not None else ts, speedup)
                    if on_caught_up is not None and clock.wall_delay_s(ts) > 0:
                        on_caught_up()  # every earlier send was acked (one record per send)
                        on_caught_up = None
                    await clock.wait_for(ts)
                await sender.send(topic, encode(event), event["zone"].encode())
                stats.sent += 1
                stats.per_zone[event["zone"]] += 1
                stats.first_ts_ms = ts if stats.first_ts_ms is None else stats.first_ts_ms
                stats.last_ts_ms = ts
    finally:
        stats.elapsed_s = time.monotonic() - t0
    if on_caught_up is not None:
        on_caught_up()
    return stats
