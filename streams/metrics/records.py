"""Turn a batch of decision records (``Decision.to_record()``) into metrics in one call.

This is what the router calls once per batch: decisions by model/region/tenant/reason with
the always-largest baseline's CO2 for the same request, each tenant's rolling spend vs budget,
its duals, and the intensity each zone was priced at (with its age).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from streams.core import Catalog, Decision
from streams.metrics.measurements import (
    BudgetSample,
    DecisionKey,
    DecisionSample,
    DualSample,
    IntensitySample,
    Metrics,
)

log = logging.getLogger(__name__)


def number(v: Any) -> float | None:
    """A JSON number as float; None for missing, null, bool or anything else."""
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


class LargestBaseline:
    """CO2 the ``always-largest`` baseline would have emitted for a recorded request: the
    largest model's eligible candidate with the lowest estimated latency (then least CO2),
    the same rule as core's baseline, read from the record's per-candidate estimates."""

    def __init__(self, catalog: Catalog) -> None:
        params = [catalog.models[int(m)].params_b for m in catalog.cand_model_idx]
        ranked = sorted(set(params), reverse=True)
        self._tiers = [[k for k, p in enumerate(params) if p == v] for v in ranked]

    def co2_g(self, record: Mapping[str, Any]) -> float | None:
        cands = record.get("candidates")
        if not isinstance(cands, dict):
            return None
        co2, lat = cands.get("co2_g"), cands.get("latency_ms")
        if not isinstance(co2, list) or not isinstance(lat, list):
            return None
        eligible = cands.get("eligible")
        allowed = set(eligible) if isinstance(eligible, list) else None
        for tier in self._tiers:
            ks = [
                k
                for k in tier
                if k < len(co2)
                and (allowed is None or k in allowed)
                and number(co2[k]) is not None
                and number(lat[k]) is not None
            ]
            if ks:
                best = min(ks, key=lambda k: (lat[k], co2[k]))
                return float(co2[best])
        return None


def decision_sample(record: Mapping[str, Any], baseline: LargestBaseline | None) -> DecisionSample:
    return DecisionSample(
        tenant=str(record.get("tenant")),
        model=str(record.get("model")),
        region=str(record.get("region")),
        reason=str(record.get("reason")),
        policy=str(record.get("policy")),
        co2_est_g=number(record.get("co2_g")) or 0.0,
        accuracy_est=number(record.get("accuracy_est")) or 0.0,
        latency_p95_est_ms=number(record.get("latency_p95_ms_est")) or 0.0,
        co2_baseline_g=baseline.co2_g(record) if baseline is not None else None,
    )


def record_decision_batch(
    metrics: Metrics,
    records: Sequence[Mapping[str, Any]],
    *,
    baseline: LargestBaseline | None = None,
    budget_window_s: float = 0.0,
    ts_ms: int | None = None,
) -> None:
    """One call per routed batch; a handful of points whatever the batch size."""
    if metrics.writer is None or not records:
        return
    metrics.decisions([decision_sample(r, baseline) for r in records], ts_ms)
    last_by_tenant: dict[str, Mapping[str, Any]] = {}
    mu: dict[str, dict[str, float]] = {}
    zones: dict[str, Mapping[str, Any]] = {}
    for r in records:
        tenant = str(r.get("tenant"))
        last_by_tenant[tenant] = r
        after = r.get("duals_after")
        if isinstance(after, dict) and number(after.get("mu")) is not None:
            mu.setdefault(tenant, {})[str(r.get("dataset"))] = float(after["mu"])
        zi = r.get("intensity")
        if isinstance(zi, dict) and zi.get("zone"):
            zones[str(zi["zone"])] = zi
    budgets, duals = [], []
    for tenant, r in last_by_tenant.items():
        budget = number(r.get("budget_g"))
        spend = (number(r.get("window_spend_g_before")) or 0.0) + (number(r.get("co2_g")) or 0.0)
        if budget is not None:
            budgets.append(BudgetSample(tenant, spend, budget, budget_window_s))
        after = r.get("duals_after") if isinstance(r.get("duals_after"), dict) else {}
        assert isinstance(after, dict)
        duals.append(
            DualSample(
                tenant,
                number(after.get("lambda")) or 0.0,
                number(after.get("nu")) or 0.0,
                mu.get(tenant, {}),
            )
        )
    metrics.budgets(budgets, ts_ms)
    metrics.duals(duals, ts_ms)
    metrics.intensity(
        [
            IntensitySample(
                zone=zone,
                intensity_g_per_kwh=number(zi.get("intensity_g_per_kwh")) or 0.0,
                age_s=(number(zi.get("age_ms")) or 0.0) / 1000.0,
                source=str(zi.get("source") or "none"),
                signal_type=str(zi.get("signal_type") or "none"),
                estimated=bool(zi.get("estimated")),
                stale=bool(zi.get("stale")),
            )
            for zone, zi in zones.items()
        ],
        ts_ms,
    )


def _batch_totals(
    decisions: Sequence[Decision], js: list[int], groups: dict[DecisionKey, list[float]]
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
    # always-largest baseline: largest eligible model, lowest estimated latency among its regions
    params = ctx.params_b[ctx.catalog.cand_model_idx]  # (K,)
    el = est.eligible[rows]
    best = np.where(el, params[None, :], -np.inf).max(axis=1)
    mask = el & (params[None, :] >= best[:, None])
    k = np.where(mask, est.latency_ms[rows], np.inf).argmin(axis=1)
    base = est.co2_g[rows, k].tolist()
    reqs = est.requests
    policy = shared.policy
    for d, row, cand, co2_g, acc_n, lat_ms, base_g in zip(
            batch, row_list, cand_list, co2, acc, lat, base, strict=True):
        model, region = deps[cand]
        g = groups[(reqs[row].tenant, model, region, d.reason, policy)]
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
        self.decisions = 0

    def add(self, decisions: Sequence[Decision]) -> None:
        if not decisions:
            return
        by_batch: dict[int, list[int]] = {}
        for j, d in enumerate(decisions):
            by_batch.setdefault(id(d.shared), []).append(j)
        for js in by_batch.values():
            _batch_totals(decisions, js, self.groups)
        # the latest decision per tenant / (tenant, dataset) / region, in decision order
        last: dict[str, Decision] = {}
        last_ds: dict[tuple[str, str], Decision] = {}
        by_region: dict[int, Decision] = {}
        region_of: dict[int, list[int]] = {}  # per batch: candidate -> region, as plain ints
        for d in decisions:
            sh = d.shared
            req = sh.est.requests[d.row]
            last[req.tenant] = d
            last_ds[(req.tenant, req.dataset)] = d
            cand_region = region_of.get(id(sh))
            if cand_region is None:
                cand_region = region_of[id(sh)] = sh.ctx.catalog.cand_region_idx.tolist()
            by_region[cand_region[d.candidate]] = d
        for t, d in last.items():
            self.last[t] = (d.window_spend_g_before + d.co2_g, d.budget_g, d.lam_after,
                            d.nu_after)
        for key, d in last_ds.items():
            self.last_mu[key] = d.mu_after
        for ri, d in by_region.items():
            self.by_region[ri] = _intensity_sample(ri, d)
        self.decisions += len(decisions)

    def write(self, metrics: Metrics, *, budget_window_s: float, ts_ms: int | None) -> None:
        if metrics.writer is None or not self.decisions:
            return
        metrics.decision_totals(self.groups, ts_ms)
        mu: dict[str, dict[str, float]] = {}
        for (tenant, ds), value in self.last_mu.items():
            mu.setdefault(tenant, {})[ds] = value
        last = self.last
        metrics.budgets(
            [BudgetSample(t, spend, budget, budget_window_s)
             for t, (spend, budget, _, _) in last.items() if budget is not None],
            ts_ms,
        )
        metrics.duals([DualSample(t, lam, nu, mu[t]) for t, (_, _, lam, nu) in last.items()],
                      ts_ms)
        metrics.intensity(list(self.by_region.values()), ts_ms)


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

    def __init__(self, metrics: Metrics, interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, background: bool = False) -> None:
        self._metrics = metrics
        self._interval_s = interval_s
        self._clock = clock
        self._totals = DecisionTotals()
        self._written_at = clock()
        # ``background``: due writes are formatted on one thread of their own. On the worker's
        # event loop a write (a line per tenant series) stalled routing 10-20 ms once a second;
        # on a thread it yields the GIL every switch interval (5 ms). Writes stay in order.
        self._pool = (ThreadPoolExecutor(1, thread_name_prefix="gar-decision-metrics")
                      if background else None)
        self._pending: Future[None] | None = None

    def add(self, decisions: Sequence[Decision]) -> None:
        if self._metrics.writer is not None:
            self._totals.add(decisions)

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
            totals.write(self._metrics, budget_window_s=budget_window_s, ts_ms=None)
        else:
            self._pending = self._pool.submit(self._write_logged, totals, budget_window_s)

    def _write_logged(self, totals: DecisionTotals, budget_window_s: float) -> None:
        try:
            totals.write(self._metrics, budget_window_s=budget_window_s, ts_ms=None)
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
