"""The Decision value every policy returns, and its JSON-safe audit record.

A decision keeps a reference to its batch's estimate matrices (no per-decision copies), so
creating one is cheap; ``to_record()`` converts its row to lists only when called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from streams.core.context import BoolArray, Estimates, RoutingContext
from streams.core.intensity import ZoneIntensity
from streams.core.tenant import Duals

RECORD_FORMAT = "gar-decision/1"


class Reason:
    """Reason codes (strings in the record)."""

    OPTIMAL = "optimal"
    """Minimum of the policy's score over the feasible set."""
    INFEASIBLE_FALLBACK = "infeasible_fallback"
    """Feasible set empty: least normalised constraint violation among eligible candidates."""
    BASELINE = "baseline"
    """A baseline's fixed rule (no feasibility notion)."""


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """What a decision shares with its batch (one object per batch)."""

    policy: str
    ctx: RoutingContext
    est: Estimates
    feasible: BoolArray
    """(N, K) feasible sets before any budget-hard filter (see ``Decision.feasible``)."""


class Decision(NamedTuple):
    """One routing decision (a named tuple: cheap to build on the hot path)."""

    shared: DecisionContext
    row: int
    candidate: int
    reason: str
    lam_before: float
    mu_before: float
    nu_before: float
    lam_after: float
    mu_after: float
    nu_after: float
    budget_g: float | None
    budget_left_g: float | None
    """Budget left in the window when the budget is hard (green), else None."""
    window_spend_g_before: float
    window_count_before: int
    in_window: bool
    """Whether the request counted toward the rolling window (False only if very late)."""
    tenant_seq: int
    """The tenant's decision sequence number (1-based) after this decision."""

    @property
    def feasible(self) -> BoolArray:
        """(K,) the feasible set the choice was made over."""
        base: BoolArray = self.shared.feasible[self.row]
        if self.budget_left_g is None:
            return base
        out: BoolArray = base & (self.shared.est.co2_g[self.row] <= self.budget_left_g)
        return out

    @property
    def duals_before(self) -> Duals:
        return Duals(self.lam_before, self.mu_before, self.nu_before)

    @property
    def duals_after(self) -> Duals:
        return Duals(self.lam_after, self.mu_after, self.nu_after)

    # --- convenient views ----------------------------------------------------------------------
    @property
    def request_id(self) -> str:
        return self.shared.est.requests[self.row].request_id

    @property
    def tenant(self) -> str:
        return self.shared.est.requests[self.row].tenant

    @property
    def model(self) -> str:
        cat = self.shared.ctx.catalog
        return cat.deployments[self.candidate][0]

    @property
    def region(self) -> str:
        return self.shared.ctx.catalog.deployments[self.candidate][1]

    @property
    def co2_g(self) -> float:
        return float(self.shared.est.co2_g[self.row, self.candidate])

    @property
    def accuracy(self) -> float:
        return float(self.shared.est.accuracy[self.row, self.candidate])

    @property
    def latency_ms(self) -> float:
        return float(self.shared.est.latency_ms[self.row, self.candidate])

    def zone_intensity(self) -> ZoneIntensity:
        ctx, est = self.shared.ctx, self.shared.est
        r = int(ctx.catalog.cand_region_idx[self.candidate])
        return ctx.zone_intensity(r, int(est.ts_ms[self.row]))

    def to_record(self) -> dict[str, Any]:
        """JSON-safe dict with everything needed to re-derive this decision (see replay.py)."""
        sh = self.shared
        ctx, est, i, k = sh.ctx, sh.est, self.row, self.candidate
        req = est.requests[i]
        cat = ctx.catalog
        m, r = cat.deployments[k]
        ri = int(cat.cand_region_idx[k])
        reading = ctx.region_readings[ri]
        age = int(est.intensity_age_ms[i, ri])
        return {
            "format": RECORD_FORMAT,
            "request_id": req.request_id,
            "tenant": req.tenant,
            "dataset": req.dataset,
            "ts_ms": req.ts_ms,
            "client_region": req.client_region,
            "input_tokens": req.input_tokens,
            "output_tokens_est": req.output_tokens_est,
            "policy": sh.policy,
            "policy_version": ctx.config.version,
            "mode": ctx.config.mode,
            "catalog_version": cat.version,
            "estimator_seq": ctx.snapshot.seq,
            "candidate": k,
            "model": m,
            "region": r,
            "reason": self.reason,
            "co2_g": float(est.co2_g[i, k]),
            "accuracy_est": float(est.accuracy[i, k]),
            "latency_p95_ms_est": float(est.latency_ms[i, k]),
            "floor": float(est.floor[i]),
            "latency_cap_ms": float(est.latency_cap_ms[i]),
            "carbon_ref_g": ctx.carbon_ref_g,
            "budget_g": self.budget_g,
            "window_spend_g_before": self.window_spend_g_before,
            "window_count_before": self.window_count_before,
            "in_window": self.in_window,
            "tenant_seq": self.tenant_seq,
            "intensity_stale": bool(est.intensity_stale[i, ri]),
            "duals_before": {"lambda": self.lam_before, "mu": self.mu_before,
                             "nu": self.nu_before},
            "duals_after": {"lambda": self.lam_after, "mu": self.mu_after, "nu": self.nu_after},
            "intensity": {
                "zone": cat.regions[ri].zone,
                "intensity_g_per_kwh": float(est.intensity_g_per_kwh[i, ri]),
                "reading_g_per_kwh": None if reading is None else reading.intensity_g_per_kwh,
                "ts_ms": None if reading is None else reading.ts_ms,
                "source": None if reading is None else reading.source,
                "signal_type": None if reading is None else reading.signal_type,
                "estimated": None if reading is None else reading.estimated,
                "source_offset": None if reading is None else reading.source_offset,
                "age_ms": None if age < 0 else age,
                "stale": bool(est.intensity_stale[i, ri]),
            },
            "candidates": {
                "co2_g": est.co2_g[i].tolist(),
                "accuracy": est.accuracy[i].tolist(),
                "latency_ms": est.latency_ms[i].tolist(),
                "feasible": np.flatnonzero(self.feasible).tolist(),
                "eligible": None if est.eligible[i].all()
                else np.flatnonzero(est.eligible[i]).tolist(),
            },
        }
