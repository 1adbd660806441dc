"""The worker's timers: event-loop lag, consumer lag, the periodic decision-metrics flush and
the one-line progress log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from streams.app.counters import Counters
from streams.app.direct import DirectRequests
from streams.app.loop_lag import LoopLagMonitor
from streams.app.router import Router
from streams.app.sink import OutputGuard
from streams.kafka.topics import TopicLayout
from streams.metrics import LagSample, Metrics
from streams.metrics.decision_metrics import DecisionMetrics

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 5.0


def faust_lag(consumer: Any, topics: tuple[str, ...], group: str) -> list[LagSample]:
    """Lag of the topics Faust reads for this worker: high watermark minus the next offset to
    read, and minus the group's committed offset. A partition whose uncommitted count stays
    above its lag has a record that was read and never processed (docs/operations.md)."""
    read_offsets: Any = getattr(consumer, "_read_offset", {})  # Faust's last read, per tp
    committed_offsets: Any = getattr(consumer, "_committed_offset", {})  # next to consume
    out = []
    for tp in consumer.assignment():
        if tp.topic not in topics:
            continue
        read = read_offsets.get(tp)
        try:
            high = consumer.highwater(tp)
        except Exception:  # not fetched yet
            continue
        if high is not None and read is not None:
            committed = committed_offsets.get(tp)
            out.append(
                LagSample(
                    tp.topic,
                    tp.partition,
                    group,
                    max(0, int(high) - int(read) - 1),
                    None if committed is None else max(0, int(high) - int(committed)),
                )
            )
    return out


class Monitoring:
    def __init__(
        self,
        faust_app: Any,
        app_id: str,
        layout: TopicLayout,
        router: Router,
        direct: DirectRequests | None,
        decision_metrics: DecisionMetrics,
        budget_window_s: Callable[[], float],
        metrics: Metrics,
        counters: Counters,
        guard: OutputGuard,
    ) -> None:
        self._faust_app = faust_app
        self._guard = guard
        self._app_id = app_id
        self._layout = layout
        self._router = router
        self._direct = direct
        self._decision_metrics = decision_metrics
        self._budget_window_s = budget_window_s
        self._metrics = metrics
        self._counters = counters
        self.loop_lag = LoopLagMonitor()

    def register(self, log_level: str) -> None:
        """Faust tasks and the report timer on the app."""
        app = self._faust_app

        @app.task  # type: ignore[untyped-decorator]
        async def quiet_root_logger() -> None:
            # `-l warn` leaves the root logger at DEBUG; resetting it is worth 9-34% (design
            # notes).
            logging.getLogger().setLevel(getattr(logging, log_level.upper(), logging.WARNING))

        @app.task  # type: ignore[untyped-decorator]
        async def watch_loop_lag() -> None:
            await self.loop_lag.run()

        @app.timer(interval=REPORT_INTERVAL_S)  # type: ignore[untyped-decorator]
        async def report() -> None:
            self.report()

        _ = (quiet_root_logger, watch_loop_lag, report)

    def report(self) -> None:
        lag = self.loop_lag.take()
        metrics = self._metrics
        metrics.event_loop(lag.max_ms, lag.mean_ms, lag.samples)
        # Flushed here too for the idle faust hot path (no batch flushes it).
        self._decision_metrics.flush(budget_window_s=self._budget_window_s())
        layout = self._layout
        if self._direct is not None:
            metrics.consumer_lag(
                [
                    LagSample(layout.requests, p, self._app_id, n)
                    for p, n in self._direct.lag().items()
                ]
            )
        if metrics.writer is not None:
            topics = (layout.completions, layout.requests, layout.policy, layout.carbon_intensity)
            metrics.consumer_lag(faust_lag(self._faust_app.consumer, topics, self._app_id))
        guard = self._guard
        metrics.refused_outputs(guard.refused, guard.replaced, guard.dropped)
        refused, replaced, dropped = guard.totals()
        t, c = self._router.totals, self._counters
        log.info(
            "routed=%d decided=%d dead=%d dup=%d completions=%d feedback=%d batches=%d "
            "refused=%d (replaced %d, dropped %d) loop_lag_ms max=%.1f mean=%.2f",
            t.messages,
            t.decided,
            t.dead_lettered,
            t.duplicates,
            c.completions,
            c.feedback_folded,
            c.batches,
            refused,
            replaced,
            dropped,
            lag.max_ms,
            lag.mean_ms,
        )
