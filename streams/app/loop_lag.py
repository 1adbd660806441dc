"""Event-loop lag: how late a short sleep wakes up.

Routing, Kafka I/O, the commit chain and Faust's agents share one asyncio loop, so anything that
holds it (a long batch, a collection, a GIL-heavy thread) delays every request in flight. The
monitor sleeps ``interval_s`` in a loop and keeps how much later than asked each wake-up came;
the worker reports the worst and the mean per report interval (``gar_event_loop``) and logs
them, which is where a p99 decision-latency spike shows up first.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LagWindow:
    samples: int
    max_ms: float
    mean_ms: float


class LoopLagMonitor:
    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self._n = 0
        self._sum_s = 0.0
        self._max_s = 0.0

    def observe(self, lag_s: float) -> None:
        lag_s = max(lag_s, 0.0)
        self._n += 1
        self._sum_s += lag_s
        if lag_s > self._max_s:
            self._max_s = lag_s

    def take(self) -> LagWindow:
        """The window since the last call, then a fresh one."""
        n, total, worst = self._n, self._sum_s, self._max_s
        self._n, self._sum_s, self._max_s = 0, 0.0, 0.0
        return LagWindow(n, 1000.0 * worst, 1000.0 * total / n if n else 0.0)

    async def run(self) -> None:
        clock, interval = time.perf_counter, self.interval_s
        while True:
            t0 = clock()
            await asyncio.sleep(interval)
            self.observe(clock() - t0 - interval)
