"""``gar carbon-feed``: publish Electricity Maps exports as ``carbon-intensity.v1`` events.

Readings of the chosen zones are merged in event-time order and keyed by zone. Without a
``speedup`` they are published as fast as the broker takes them; with one, each reading is
published when an event-time replay clock (origin = ``start_ms``) reaches its hour, so a
matching ``gar produce --speedup`` run sees the intensity of its own hour. Event timestamps are
the data's (``ts_ms`` = start of the hour, UTC).
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


@dataclass
class FeedStats:
    sent: int = 0
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None
    elapsed_s: float = 0.0
    per_zone: Counter[str] = field(default_factory=Counter)


def carbon_dir(settings: Settings) -> Path:
    return settings.data.shared_data_dir / "carbon" / "electricitymaps-hourly-2023"


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
) -> FeedStats:
    """Publish ``events`` keyed by zone; bounded by ``max_events`` and ``duration_s``."""
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
                    await clock.wait_for(ts)
                await sender.send(topic, encode(event), event["zone"].encode())
                stats.sent += 1
                stats.per_zone[event["zone"]] += 1
                stats.first_ts_ms = ts if stats.first_ts_ms is None else stats.first_ts_ms
                stats.last_ts_ms = ts
    finally:
        stats.elapsed_s = time.monotonic() - t0
    return stats
