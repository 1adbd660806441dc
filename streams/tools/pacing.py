"""Pacing of the replay tools: a fixed rate, or an event-time replay clock.

A ``ReplayClock`` maps event time to wall time: event time ``origin_ms`` is "now" at start and
advances ``speedup`` times faster than the wall clock. ``gar produce --speedup`` and ``gar
carbon-feed --speedup`` with the same origin and speedup keep requests and intensity readings in
step, so the router prices each request with the reading of its hour.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class ReplayClock:
    origin_ms: int
    speedup: float
    wall0_s: float = field(default_factory=time.monotonic)

    def wall_delay_s(self, event_ts_ms: int) -> float:
        """Seconds from now until ``event_ts_ms`` is due (<= 0: already due)."""
        due = self.wall0_s + (event_ts_ms - self.origin_ms) / 1000.0 / self.speedup
        return due - time.monotonic()

    async def wait_for(self, event_ts_ms: int) -> None:
        delay = self.wall_delay_s(event_ts_ms)
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class RateLimiter:
    """At most ``rate_per_s`` items per second on average (``None``: unlimited)."""

    rate_per_s: float | None
    wall0_s: float = field(default_factory=time.monotonic)

    async def wait_for(self, sent: int) -> None:
        if self.rate_per_s is None or self.rate_per_s <= 0:
            return
        delay = self.wall0_s + sent / self.rate_per_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
