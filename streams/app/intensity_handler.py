"""The carbon-intensity side input: readings -> each zone's trimmed history in the replicated
intensity table (and its changelog), which every worker prices with."""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping

from streams.app.counters import Counters
from streams.app.dead_letters import SideInputDeadLetters
from streams.app.router import RawMessage
from streams.app.sink import BatchSink
from streams.app.views import Views, zone_history_bytes
from streams.core.intensity import IntensityReading, trim_history
from streams.ingress.context import IngressContext
from streams.ingress.intensity import parse_intensity_many
from streams.ingress.rejected import Rejected


class IntensityHandler:
    def __init__(
        self,
        views: Views,
        ingress: IngressContext,
        store: MutableMapping[bytes, bytes],
        changelog: str,
        dead_letters: SideInputDeadLetters,
        counters: Counters,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._views = views
        self._ingress = ingress
        self._store = store
        self._changelog = changelog
        self._dead_letters = dead_letters
        self._counters = counters
        self._wall_ms = wall_ms

    def handle(self, msgs: list[RawMessage], sink: BatchSink) -> None:
        now_ms = self._wall_ms()
        histories: dict[str, list[IntensityReading]] = {}
        for msg in msgs:
            parsed = parse_intensity_many(msg.value, self._ingress, msg.source)
            if isinstance(parsed, Rejected):
                self._dead_letters.write(sink, parsed, msg.key, msg.partition, now_ms)
                continue
            for reading in parsed:
                hist = histories.get(reading.zone)
                if hist is None:
                    hist = histories[reading.zone] = list(self._views.zone_history(reading.zone))
                hist.append(reading)
                self._counters.intensity_readings += 1
        for zone, hist in histories.items():
            value = zone_history_bytes(trim_history(hist))
            self._store[zone.encode()] = value
            sink.add(self._changelog, zone.encode(), value, partition=0)
