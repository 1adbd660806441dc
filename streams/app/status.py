"""The worker's live status page on Faust's own web server: ``/status`` (HTML that refreshes
itself every 2 s from its JSON twin) and ``/status.json``.

It shows what an operator asks a running worker: which partitions it holds and how far behind
it is, its batch sizes and decision latency, the intensity per zone and how fresh it is, the
policy in force, realised accuracy per dataset against its floor, and the tenants' duals and
budget use. Everything is read from the worker's own parts in the event loop that routes (a
snapshot costs well under a millisecond for the tenants it holds, and it is computed only
when asked). The worker also logs one ``ready`` line with its partitions after each
assignment.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streams.app.checkpoint import CheckpointedMap
from streams.app.counters import Counters
from streams.app.direct import DirectRequests
from streams.app.router import Router
from streams.app.views import Views
from streams.config import Settings
from streams.core.tenant import TenantState
from streams.kafka.topics import TopicLayout

log = logging.getLogger(__name__)

LATENCY_WINDOW_S = 60.0
RATE_WINDOW_S = 10.0
MAX_TENANTS = 50
PAGE = Path(__file__).with_name("status.html")


class StatusBoard:
    """Collects the few things the worker does not keep anyway (recent decision latencies,
    cumulative counts sampled once a second) and builds the status snapshot."""

    def __init__(
        self,
        settings: Settings,
        layout: TopicLayout,
        views: Views,
        router: Router,
        tenants: CheckpointedMap[TenantState],
        counters: Counters,
        direct: DirectRequests | None,
        assigned: Callable[[], Sequence[int]],
        wall_s: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._layout = layout
        self._views = views
        self._router = router
        self._tenants = tenants
        self._counters = counters
        self._direct = direct
        self._assigned = assigned
        self._wall_s = wall_s
        self._started_s = wall_s()
        self._latencies: deque[tuple[float, float]] = deque(maxlen=20_000)
        self._samples: deque[tuple[float, int, int, int]] = deque(maxlen=600)
        self.sample()

    # --- fed by the worker ----------------------------------------------------------------
    def add_latency(self, appended_ms: Sequence[int | None], decided_ms: int) -> None:
        """Request on the broker -> its decision acknowledged (what the dashboards plot)."""
        now = self._wall_s()
        for t in appended_ms:
            if t is not None:
                self._latencies.append((now, float(max(decided_ms - t, 0))))

    def sample(self) -> None:
        """Cumulative counts now (a timer calls it once a second): rates and batch sizes."""
        t = self._router.totals
        self._samples.append((self._wall_s(), t.messages, t.decided, self._counters.batches))

    # --- the snapshot ---------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        now = self._wall_s()
        ctx = self._views.context(refresh_estimators=False)
        policy = ctx.config
        newest_event_ms = max(
            (st.watermark_ms for _, st in self._tenants.cached_items()), default=-1
        )
        return {
            "worker": self._worker(now),
            "partitions": self._partitions(),
            "throughput": self._throughput(now),
            "latency_ms": self._latency(now),
            "intensity": self._intensity(newest_event_ms, int(now * 1000)),
            "policy": {
                "name": self._views.policy_name,
                "version": policy.version,
                "mode": policy.mode,
                "source_offset": self._views.policy_offset,
                "latency_slo_ms": policy.latency_slo_ms,
                "floors": dict(policy.floors),
                "default_budget_g": policy.default_budget_g,
                "budget_window_ms": policy.budget_window_ms,
                "tenant_overrides": sorted(policy.tenant_overrides),
            },
            "accuracy": self._accuracy(ctx),
            "tenants": self._tenant_rows(),
        }

    def _worker(self, now: float) -> dict[str, Any]:
        w = self._settings.worker
        return {
            "app_id": self._settings.app_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "uptime_s": round(now - self._started_s, 1),
            "requests_topic": self._layout.requests,
            "hot_path": w.hot_path,
            "catalog_version": self._views.catalog.version,
        }

    def _partitions(self) -> list[dict[str, Any]]:
        lag = self._direct.lag() if self._direct is not None else {}
        return [{"partition": p, "lag": lag.get(p)} for p in sorted(self._assigned())]

    def _throughput(self, now: float) -> dict[str, Any]:
        t = self._router.totals
        recent = [s for s in self._samples if s[0] >= now - RATE_WINDOW_S] or [self._samples[-1]]
        first = recent[0]
        t_s, messages, decided, batches = self._samples[-1]
        dt = max(t_s - first[0], 1e-9)
        d_batches = batches - first[3]
        return {
            "messages": t.messages,
            "decided": t.decided,
            "dead_lettered": t.dead_lettered,
            "duplicates": t.duplicates,
            "batches": self._counters.batches,
            "completions": self._counters.completions,
            "feedback_folded": self._counters.feedback_folded,
            "intensity_readings": self._counters.intensity_readings,
            "decisions_per_s": round((decided - first[2]) / dt, 1) if dt > 0.5 else 0.0,
            "mean_batch_size": round((messages - first[1]) / d_batches, 1) if d_batches else None,
            "mean_batch_size_total": round(t.messages / self._counters.batches, 1)
            if self._counters.batches
            else None,
        }

    def _latency(self, now: float) -> dict[str, Any]:
        values = [v for ts, v in self._latencies if ts >= now - LATENCY_WINDOW_S]
        if not values:
            return {"window_s": LATENCY_WINDOW_S, "count": 0, "p50": None, "p95": None, "p99": None}
        p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99]).tolist()
        return {
            "window_s": LATENCY_WINDOW_S,
            "count": len(values),
            "p50": round(p50, 1),
            "p95": round(p95, 1),
            "p99": round(p99, 1),
        }

    def _intensity(self, newest_event_ms: int, now_ms: int) -> list[dict[str, Any]]:
        """Per zone: the latest reading and its age against the newest request's event time
        (a replayed trace is old by the wall clock, not by the requests it prices)."""
        max_age = self._views.policy.intensity_max_age_ms
        rows = []
        for region in self._views.catalog.regions:
            r = self._views.intensity.latest(region.zone)
            age = None if r is None or newest_event_ms < 0 else newest_event_ms - r.ts_ms
            rows.append(
                {
                    "region": region.name,
                    "zone": region.zone,
                    "g_per_kwh": None if r is None else r.intensity_g_per_kwh,
                    "ts_ms": None if r is None else r.ts_ms,
                    "age_event_ms": age,
                    "age_wall_ms": None if r is None else now_ms - r.ts_ms,
                    "stale": r is None or (age is not None and age > max_age),
                }
            )
        return rows

    def _accuracy(self, ctx: Any) -> list[dict[str, Any]]:
        floors = dict(zip(ctx.catalog.datasets, ctx.floors.tolist(), strict=True))
        graded = self._counters.graded
        rows = []
        for ds in sorted(set(graded) | {d for d in floors if d != "*"}):
            n, correct = graded.get(ds, (0, 0))
            floor = floors.get(ds, floors.get("*"))
            realised = correct / n if n else None
            rows.append(
                {
                    "dataset": ds,
                    "graded": n,
                    "realised": None if realised is None else round(realised, 4),
                    "floor": None if floor is None else round(float(floor), 4),
                    "gap_pt": None
                    if realised is None or floor is None
                    else round(100 * (realised - floor), 2),
                }
            )
        return rows

    def _tenant_rows(self) -> list[dict[str, Any]]:
        policy = self._views.policy
        rows: list[dict[str, Any]] = []
        for tenant, st in self._tenants.cached_items():
            if tenant.startswith("\x00"):  # scope-wide state, not a tenant
                continue
            budget = policy.for_tenant(tenant).budget_for(tenant)
            rows.append(
                {
                    "tenant": tenant,
                    "lambda": round(st.lam, 6),
                    "nu": round(st.nu, 6),
                    "mu": {d: round(v, 6) for d, v in sorted(st.mu.items())},
                    "window_spend_g": round(st.window_spend_g, 6),
                    "budget_g": budget,
                    "budget_used": None if not budget else round(st.window_spend_g / budget, 4),
                    "decisions": st.seq,
                    "override": tenant in policy.tenant_overrides,
                }
            )
        rows.sort(key=lambda r: (-float(r["budget_used"] or 0.0), -float(r["window_spend_g"])))
        return rows[:MAX_TENANTS]


def register_status(app: Any, board: StatusBoard, web_url: Callable[[], str]) -> None:
    """``/status`` and ``/status.json`` on Faust's web server, the sampling timer and the
    ``ready`` line."""
    page = PAGE.read_text(encoding="utf-8")

    @app.page("/status.json")  # type: ignore[untyped-decorator]
    async def status_json(self: Any, request: Any) -> Any:
        return self.json(board.snapshot())

    @app.page("/status")  # type: ignore[untyped-decorator]
    async def status_html(self: Any, request: Any) -> Any:
        return self.html(page)

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def sample_status() -> None:
        board.sample()

    @app.on_rebalance_complete.connect  # type: ignore[misc,arg-type,untyped-decorator]
    async def log_ready(sender: Any, **kwargs: Any) -> None:
        parts = sorted(board._assigned())
        # WARNING: the worker's default log level; this is the one line a healthy start prints.
        log.warning("ready: partitions %s, status %s/status", parts, web_url())

    _ = (status_json, status_html, sample_status, log_ready)
