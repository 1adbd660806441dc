"""Run one registered policy over a trace with the feedback loop the real system has.

Event-time loop, in micro-batches of ``batch_ms`` (like the worker's ``take()`` batches):

1. hourly intensity readings whose hour has started are added to the intensity view (with
   ``source_offset`` = hour index, so records point at their input);
2. completions that finished before the batch starts are folded into the estimators (the real
   system learns correctness, serving latency and measured energy the same way, late);
3. ``RoutingContext.build`` + ``policy.decide_batch`` decide the batch, one call per scope
   (the requests partition its tenant hashes to, as the worker's Kafka partitioner puts it);
   tenant and scope states carry over between batches;
4. the world realises the outcome of each decision and queues its completion at
   ``ts + serving latency`` (``feedback=False``: estimators keep the catalog priors).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.core import (
    Completion,
    EstimatorState,
    IntensityReading,
    IntensityView,
    PolicyConfig,
    Request,
    RoutingContext,
    TenantState,
    fold_feedback,
    get_policy,
)
from streams.core.decision import Decision
from streams.core.policies import Policy
from streams.core.tenant import SCOPE_BOOK
from streams.data.carbon import ZoneIntensity
from streams.eval.partitioner import partition_of
from streams.eval.world import Outcomes, World

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Progress = Callable[[int], None]
DEFAULT_BATCH_MS = 300_000


@dataclass
class RunResult:
    policy: str
    candidate: IntArray
    outcomes: Outcomes
    reasons: list[str]
    lam: FloatArray
    mu: FloatArray
    nu: FloatArray
    window_spend_g: FloatArray
    budget_g: FloatArray
    records: list[dict[str, Any]] = field(default_factory=list)

    def labels(self, world: World) -> list[str]:
        deps = world.catalog.deployments
        return [f"{deps[k][0]}@{deps[k][1]}" for k in self.candidate.tolist()]


def intensity_readings(
    zones: Mapping[str, ZoneIntensity], start_ms: int, end_ms: int
) -> list[IntensityReading]:
    """Hourly readings of every zone from the hour before ``start_ms`` up to ``end_ms``."""
    out: list[IntensityReading] = []
    for name, z in zones.items():
        lo = max(0, int(np.searchsorted(z.ts_ms, start_ms, side="right")) - 1)
        hi = int(np.searchsorted(z.ts_ms, end_ms, side="right"))
        for h in range(lo, hi):
            out.append(
                IntensityReading(
                    zone=name,
                    intensity_g_per_kwh=float(z.intensity_g_per_kwh[h]),
                    ts_ms=int(z.ts_ms[h]),
                    source=f"electricitymaps:{z.signal}",
                    signal_type="average",
                    estimated=bool(z.estimated[h]),
                    source_offset=h,
                )
            )
    out.sort(key=lambda r: (r.ts_ms, r.zone))
    return out


class _Scopes:
    """tenant -> requests partition (Kafka's default partitioner on the tenant key), cached."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._memo: dict[str, int] = {}

    def __call__(self, tenant: str) -> int:
        p = self._memo.get(tenant)
        if p is None:
            p = self._memo[tenant] = partition_of(tenant.encode(), self.partitions)
        return p

    def group(self, completions: list[Completion]) -> list[tuple[int, list[Completion]]]:
        """``completions`` split by scope, each group in the original order."""
        groups: dict[int, list[Completion]] = {}
        for c in completions:
            groups.setdefault(self(c.tenant), []).append(c)
        return sorted(groups.items())


def _enter_scope(states: dict[str, TenantState], scopes: dict[int, TenantState], p: int) -> None:
    """Put scope ``p``'s shared state under SCOPE_BOOK for the next core call (named like the
    worker names it: ``p<partition>``)."""
    st = scopes.get(p)
    states[SCOPE_BOOK] = st if st is not None else TenantState(f"p{p}")


def _leave_scope(
    states: dict[str, TenantState],
    scopes: dict[int, TenantState],
    p: int,
    changed: Mapping[str, TenantState],
) -> None:
    """Fold a core call's changed states back; the scope's state goes home."""
    states.update(changed)
    scope = states.pop(SCOPE_BOOK, None)
    if scope is not None:
        scopes[p] = scope


def _decide_by_scope(
    policy: Policy,
    ctx: RoutingContext,
    states: dict[str, TenantState],
    scopes: dict[int, TenantState],
    scope_of: _Scopes,
    batch: list[Request],
) -> list[Decision]:
    """Decide ``batch`` one scope at a time (the worker decides each partition's requests in
    log order with that partition's scope state); decisions in the batch's order."""
    order: dict[int, list[int]] = {}
    for i, req in enumerate(batch):
        order.setdefault(scope_of(req.tenant), []).append(i)
    result: list[Decision | None] = [None] * len(batch)
    for p, idx in sorted(order.items()):
        _enter_scope(states, scopes, p)
        changed, decisions = policy.decide_batch(ctx, states, [batch[i] for i in idx])
        _leave_scope(states, scopes, p, changed)
        for i, d in zip(idx, decisions, strict=True):
            result[i] = d
    return [d for d in result if d is not None]


def restrict_to_home(requests: list[Request], home: Mapping[str, str]) -> list[Request]:
    """The home-region variant of a trace: each request may only use its client's home zone."""
    return [replace(r, allow_regions=(home[r.client_region],)) for r in requests]


def simulate(
    policy_name: str,
    world: World,
    zones: Mapping[str, ZoneIntensity],
    config: PolicyConfig,
    *,
    requests: list[Request] | None = None,
    batch_ms: int = DEFAULT_BATCH_MS,
    keep_records: bool = False,
    progress: Progress | None = None,
    label: str | None = None,
    feedback: bool = True,
    partitions: int = 4,
) -> RunResult:
    catalog, trace = world.catalog, world.trace
    reqs = requests if requests is not None else trace.requests
    policy = get_policy(policy_name)
    n = len(reqs)
    ts = trace.ts_ms
    estimators = EstimatorState(catalog)
    readings = intensity_readings(
        {r.zone: zones[r.zone] for r in catalog.regions}, int(ts[0]), int(ts[-1])
    )
    view = IntensityView()
    next_reading = 0
    pending: list[tuple[int, int, Completion]] = []  # (done ts, request index, completion)
    states: dict[str, TenantState] = {}
    # Each scope's shared state (the pooled duals) lives under SCOPE_BOOK while its requests
    # are decided; the worker keeps one per requests partition.
    scopes: dict[int, TenantState] = {}
    scope_of = _Scopes(partitions)
    ctx: RoutingContext | None = None
    cand = np.empty(n, dtype=np.int64)
    lam, mu, nu, spend, budget = (np.zeros(n) for _ in range(5))
    reasons: list[str] = [""] * n
    records: list[dict[str, Any]] = []
    batch_of = (ts - ts[0]) // batch_ms
    bounds = np.flatnonzero(np.diff(batch_of)) + 1
    starts = np.concatenate(([0], bounds)).astype(np.int64)
    ends = np.concatenate((bounds, [n])).astype(np.int64)
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        t0 = int(ts[lo])
        while next_reading < len(readings) and readings[next_reading].ts_ms <= t0:
            view = view.with_reading(readings[next_reading])
            next_reading += 1
        arrived: list[Completion] = []
        while pending and pending[0][0] <= t0:
            arrived.append(heapq.heappop(pending)[2])
            estimators.observe(arrived[-1])
        if arrived and ctx is not None:
            # Realised correctness into the tenants' mu duals, priced with the estimates in
            # force before these completions were folded in (core: fold_feedback).
            for p, group in scope_of.group(arrived):
                _enter_scope(states, scopes, p)
                _leave_scope(states, scopes, p, fold_feedback(ctx, states, group))
        ctx = RoutingContext.build(catalog, config, estimators, view)
        batch = reqs[lo:hi]
        decisions = _decide_by_scope(policy, ctx, states, scopes, scope_of, batch)
        idx = np.arange(lo, hi, dtype=np.int64)
        ks = np.fromiter((d.candidate for d in decisions), np.int64, hi - lo)
        cand[lo:hi] = ks
        o = world.outcomes(idx, ks)
        for j, d in enumerate(decisions):
            i = lo + j
            reasons[i] = d.reason
            lam[i], mu[i], nu[i] = d.duals_after.lam, d.duals_after.mu, d.duals_after.nu
            spend[i] = d.window_spend_g_before
            budget[i] = np.nan if d.budget_g is None else d.budget_g
            if keep_records:
                records.append(d.to_record())
            req = batch[j]
            done = int(req.ts_ms + o.serving_ms[j])
            completion = Completion(
                request_id=req.request_id,
                tenant=req.tenant,
                model=d.model,
                region=d.region,
                dataset=req.dataset,
                ts_ms=done,
                latency_ms=float(o.serving_ms[j]),
                input_tokens=req.input_tokens,
                output_tokens=int(o.output_tokens[j]),
                energy_j=float(o.energy_j[j]),
                correct=bool(o.correct[j] == 1),
            )
            if feedback:
                heapq.heappush(pending, (done, i, completion))
        if progress is not None:
            progress(hi - lo)
    outcomes = world.outcomes(np.arange(n, dtype=np.int64), cand)
    return RunResult(
        policy=label or policy_name,
        candidate=cand,
        outcomes=outcomes,
        reasons=reasons,
        lam=lam,
        mu=mu,
        nu=nu,
        window_spend_g=spend,
        budget_g=budget,
        records=records,
    )
