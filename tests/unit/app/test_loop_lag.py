"""The event-loop lag monitor: the window arithmetic, and a real blocked loop shows up."""

from __future__ import annotations

import asyncio
import time

from streams.app.loop_lag import LoopLagMonitor


def test_take_reports_the_window_and_starts_a_new_one() -> None:
    mon = LoopLagMonitor()
    for lag_s in (0.001, 0.003, -0.0005):  # a wake-up can be early by clock granularity
        mon.observe(lag_s)
    w = mon.take()
    assert (w.samples, round(w.max_ms, 6), round(w.mean_ms, 6)) == (3, 3.0, round(4.0 / 3, 6))
    empty = mon.take()
    assert (empty.samples, empty.max_ms, empty.mean_ms) == (0, 0.0, 0.0)


def test_a_blocking_call_on_the_loop_is_measured_as_lag() -> None:
    mon = LoopLagMonitor(interval_s=0.01)

    async def main() -> None:
        task = asyncio.create_task(mon.run())
        await asyncio.sleep(0.05)
        mon.take()  # drop the start-up window
        await asyncio.sleep(0.005)
        time.sleep(0.12)  # holds the loop: the monitor's sleep wakes ~110 ms late
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(main())
    w = mon.take()
    assert w.samples >= 2
    assert w.max_ms >= 80.0
