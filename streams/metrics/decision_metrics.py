"""Turn a batch of decision records (``Decision.to_record()``) into metrics in one call.

This is what the router calls once per batch: decisions by model/region/tenant/reason with
the always-largest baseline's CO2 for the same request, each tenant's rolling spend vs budget,
its duals, and the intensity each zone was priced at (with its age).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from streams.core import Decision
from streams.metrics.measurements import (
    LATENCY_BUCKETS_MS,
    BudgetSample,
    DecisionKey,
    DualSample,
    IntensitySample,
    Metrics,
)
from streams.metrics.record_batch import (
    LargestBaseline,
    dataset_samples,
    decision_sample,
    number,
    record_decision_batch,
)

__all__ = [
    "DecisionMetrics",
    "DecisionTotals",
    "LargestBaseline",
    "decision_sample",
    "number",
    "record_decision_batch",
    "record_decisions",
]

log = logging.getLogger(__name__)


def _batch_totals(
    decisions: Sequence[Decision],
    js: list[int],
    groups: dict[DecisionKey, list[float]],
    by_dataset: dict[str, list[float]],
) -> None:
    """Aggregate one batch's decisions (they share their estimate matrices) with numpy."""
    shared = decisions[js[0]].shared
    est, ctx = shared.est, shared.ctx
    deps = ctx.catalog.deployments
    batch = [decisions[j] for j in js]
    row_list = [d.row for d in batch]
    cand_list = [d.candidate for d in batch]  # plain ints: indexing numpy per decision is slow
    rows = np.array(row_list, dtype=np.int64)
    cands = np.array(cand_list, dtype=np.int64)
    co2 = est.co2_g[rows, cands].tolist()
    acc = est.accuracy[rows, cands].tolist()
    lat = est.latency_ms[rows, cands].tolist()
    floors = est.floor[rows].tolist()
    # always-largest baseline: largest eligible model, lowest estimated latency among its regions
    params = ctx.params_b[ctx.catalog.cand_model_idx]  # (K,)
    el = est.eligible[rows]
    best = np.where(el, params[None, :], -np.inf).max(axis=1)
    mask = el & (params[None, :] >= best[:, None])
    k = np.where(mask, est.latency_ms[rows], np.inf).argmin(axis=1)
    base = est.co2_g[rows, k].tolist()
    reqs = est.requests
    policy = shared.policy
    for d, row, cand, co2_g, acc_n, lat_ms, base_g, floor in zip(
        batch, row_list, cand_list, co2, acc, lat, base, floors, strict=True
    ):
        model, region = deps[cand]
        req = reqs[row]
        ds = by_dataset.get(req.dataset)
        if ds is None:
            ds = by_dataset[req.dataset] = [0.0, 0.0, 0.0]
        ds[0] += 1
        ds[1] += acc_n
        ds[2] = floor
        g = groups[(req.tenant, model, region, d.reason, policy)]
        g[0] += 1
        g[1] += co2_g
        g[2] += acc_n
        g[3] += lat_ms
        g[4] += base_g
        g[5] += 1


class DecisionTotals:
    """Decision metrics of any number of batches, written as one set of points: sums per
    (tenant, model, region, reason, policy), and the latest budget, duals per tenant and
    intensity per region. The router adds every batch and writes at most once per interval, so
    the points (and their encoding) no longer grow with the number of batches. Only numbers
    are kept between batches, never a decision (which would pin its batch's matrices)."""

    def __init__(self) -> None:
        self.groups: dict[DecisionKey, list[float]] = defaultdict(lambda: [0.0] * 6)
        # tenant -> (window spend incl. the decision, budget, lambda after, nu after)
        self.last: dict[str, tuple[float, float | None, float, float]] = {}
        self.last_mu: dict[tuple[str, str], float] = {}
        self.by_region: dict[int, IntensitySample] = {}
        self.by_dataset: dict[str, list[float]] = {}  # dataset -> [count, accuracy sum, floor]
        self.decisions = 0
        # request-to-decision latency: requests per bucket of LATENCY_BUCKETS_MS (+ "+Inf")
        self.latency_counts = np.zeros(len(LATENCY_BUCKETS_MS) + 1, dtype=np.int64)
        self.latency_sum_ms = 0.0
        self.latency_max_ms = 0.0

    def add_latencies(self, latencies_ms: Sequence[float] | npt.NDArray[np.float64]) -> None:
        lat = np.asarray(latencies_ms, dtype=np.float64)
        if not lat.size:
            return
        idx = np.searchsorted(_LATENCY_BOUNDS, lat, side="left")
        self.latency_counts += np.bincount(idx, minlength=len(self.latency_counts))
        self.latency_sum_ms += float(lat.sum())
        self.latency_max_ms = max(self.latency_max_ms, float(lat.max()))

    def add(self, decisions: Sequence[Decision]) -> None:
        if not decisions:
            return
        by_batch: dict[int, list[int]] = {}
        for j, d in enumerate(decisions):
            by_batch.setdefault(id(d.shared), []).append(j)
        for js in by_batch.values():
            _batch_totals(decisions, js, self.groups, self.by_dataset)
        # the latest decision per tenant / (tenant, dataset) / batch, in decision order
        last: dict[str, Decision] = {}
        last_ds: dict[tuple[str, str], Decision] = {}
        last_of_batch: dict[int, Decision] = {}
        for d in decisions:
            sh = d.shared
            req = sh.est.requests[d.row]
            last[req.tenant] = d
            last_ds[(req.tenant, req.dataset)] = d
            last_of_batch[id(sh)] = d
        for t, d in last.items():
            self.last[t] = (d.window_spend_g_before + d.co2_g, d.budget_g, d.lam_after, d.nu_after)
        for key, d in last_ds.items():
            self.last_mu[key] = d.mu_after
        # every zone the batch priced, chosen or not: a stale zone nobody is routed to still
        # shows (a decision record only carries the chosen region's intensity)
        for d in last_of_batch.values():
            for ri in range(len(d.shared.ctx.catalog.regions)):
                self.by_region[ri] = _intensity_sample(ri, d)
        self.decisions += len(decisions)

    def write(
        self,
        metrics: Metrics,
        *,
        budget_window_s: float,
        ts_ms: int | None,
        latency_slo_ms: float | None = None,
    ) -> None:
        if metrics.writer is None:
            return
        if self.latency_counts.any():
            cumulative = np.cumsum(self.latency_counts).tolist()
            metrics.decision_latency(cumulative, self.latency_sum_ms, self.latency_max_ms, ts_ms)
        if not self.decisions:
            return
        if latency_slo_ms is not None:
            metrics.policy(latency_slo_ms, budget_window_s, ts_ms)
        metrics.decision_totals(self.groups, ts_ms)
        metrics.dataset_decisions(dataset_samples(self.by_dataset), ts_ms)
        mu: dict[str, dict[str, float]] = {}
        for (tenant, ds), value in self.last_mu.items():
            mu.setdefault(tenant, {})[ds] = value
        last = self.last
        metrics.budgets(
            [
                BudgetSample(t, spend, budget, budget_window_s)
                for t, (spend, budget, _, _) in last.items()
                if budget is not None
            ],
            ts_ms,
        )
        metrics.duals([DualSample(t, lam, nu, mu[t]) for t, (_, _, lam, nu) in last.items()], ts_ms)
        metrics.intensity(list(self.by_region.values()), ts_ms)


_LATENCY_BOUNDS = np.asarray(LATENCY_BUCKETS_MS, dtype=np.float64)


def _intensity_sample(region_idx: int, d: Decision) -> IntensitySample:
    """The intensity a decision was priced at in its chosen region (the record's
    ``intensity`` block), read from the batch's arrays."""
    ctx, est, i = d.shared.ctx, d.shared.est, d.row
    rd = ctx.region_readings[region_idx]
    age_ms = est.intensity_age_ms.item(i, region_idx)
    return IntensitySample(
        zone=ctx.catalog.regions[region_idx].zone,
        intensity_g_per_kwh=est.intensity_g_per_kwh.item(i, region_idx),
        age_s=max(age_ms, 0) / 1000.0,
        source=(rd.source if rd is not None else None) or "none",
        signal_type=(rd.signal_type if rd is not None else None) or "none",
        estimated=bool(rd is not None and rd.estimated),
        stale=bool(est.intensity_stale[i, region_idx]),
    )


class DecisionMetrics:
    """What the router calls per batch: ``add`` aggregates, ``flush`` writes the totals when
    ``interval_s`` passed since the last write (or always with ``force``, e.g. when idle)."""

    def __init__(
        self,
        metrics: Metrics,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        background: bool = False,
        latency_slo_ms: Callable[[], float] | None = None,
    ) -> None:
        """``latency_slo_ms``: the SLO in force, written with the totals (``gar_policy``)."""
        self._metrics = metrics
        self._slo_ms = latency_slo_ms
        self._interval_s = interval_s
        self._clock = clock
        self._totals = DecisionTotals()
        self._written_at = clock()
        # ``background``: due writes are formatted on one thread of their own. On the worker's
        # event loop a write (a line per tenant series) stalled routing 10-20 ms once a second;
        # on a thread it yields the GIL every switch interval (5 ms). Writes stay in order.
        self._pool = (
            ThreadPoolExecutor(1, thread_name_prefix="gar-decision-metrics") if background else None
        )
        self._pending: Future[None] | None = None

    def add(self, decisions: Sequence[Decision]) -> None:
        if self._metrics.writer is not None:
            self._totals.add(decisions)

    def add_request_latency(self, appended_ms: Sequence[int | None], decided_ms: int) -> None:
        """Requests whose decisions the broker acknowledged at ``decided_ms``, by the time the
        broker appended each request (its record timestamp; None: unknown, not counted)."""
        if self._metrics.writer is not None and appended_ms:
            appended = np.array(appended_ms)  # int64: 4x faster than asking for float64
            if appended.dtype == object:  # some timestamps unknown
                appended = np.array([t for t in appended_ms if t is not None], dtype=np.int64)
            self._totals.add_latencies(np.maximum(decided_ms - appended, 0).astype(np.float64))

    def flush(self, *, budget_window_s: float, force: bool = False) -> None:
        """Write the totals if due (or ``force``: now, on this thread, after any write in
        flight, so a forced flush is complete when it returns)."""
        now = self._clock()
        if not force and now - self._written_at < self._interval_s:
            return
        self._written_at = now
        totals, self._totals = self._totals, DecisionTotals()
        self.wait()  # writes in order, at most one in flight (one per interval)
        if self._pool is None or force:
            self._write(totals, budget_window_s)
        else:
            self._pending = self._pool.submit(self._write_logged, totals, budget_window_s)

    def _write(self, totals: DecisionTotals, budget_window_s: float) -> None:
        slo_ms = self._slo_ms() if self._slo_ms is not None else None
        totals.write(
            self._metrics, budget_window_s=budget_window_s, ts_ms=None, latency_slo_ms=slo_ms
        )

    def _write_logged(self, totals: DecisionTotals, budget_window_s: float) -> None:
        try:
            self._write(totals, budget_window_s)
        except Exception:  # metrics never stop routing
            log.exception("decision metrics write failed")

    def wait(self) -> None:
        """Until the background write in flight (if any) is done."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def close(self) -> None:
        self.wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def record_decisions(
    metrics: Metrics,
    decisions: Sequence[Decision],
    *,
    budget_window_s: float = 0.0,
    ts_ms: int | None = None,
) -> None:
    """Like ``record_decision_batch`` but straight from core ``Decision`` objects: no record
    dicts, estimates and the baseline read from the batch's numpy matrices."""
    if metrics.writer is None or not decisions:
        return
    totals = DecisionTotals()
    totals.add(decisions)
    totals.write(metrics, budget_window_s=budget_window_s, ts_ms=ts_ms)
