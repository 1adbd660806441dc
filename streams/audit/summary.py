"""What a range of decisions amounted to: CO2, accuracy, SLO and budget compliance.

Everything here comes from the decision records alone (estimates at decision time); observed
outcomes need the completions topic and are not part of this summary.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from streams.audit.reader import DecisionRow
from streams.metrics.decision_metrics import number


@dataclass
class TenantSummary:
    decisions: int = 0
    co2_g: float = 0.0
    budget_g: float | None = None
    max_window_spend_g: float = 0.0
    decisions_over_budget: int = 0


@dataclass
class Summary:
    decisions: int = 0
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None
    co2_g: float = 0.0
    accuracy_est_sum: float = 0.0
    meets_floor: int = 0
    meets_latency_cap: int = 0
    by_policy: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    by_model_region: Counter[str] = field(default_factory=Counter)
    stale_intensity: int = 0
    tenants: dict[str, TenantSummary] = field(default_factory=lambda: defaultdict(TenantSummary))

    @property
    def co2_g_per_request(self) -> float:
        return self.co2_g / self.decisions if self.decisions else 0.0

    @property
    def accuracy_est_mean(self) -> float:
        return self.accuracy_est_sum / self.decisions if self.decisions else 0.0

    def to_dict(self) -> dict[str, Any]:
        n = max(self.decisions, 1)
        return {
            "decisions": self.decisions,
            "first_ts_ms": self.first_ts_ms,
            "last_ts_ms": self.last_ts_ms,
            "co2_g": self.co2_g,
            "co2_g_per_request": self.co2_g_per_request,
            "accuracy_est_mean": self.accuracy_est_mean,
            "floor_met_ratio": self.meets_floor / n,
            "latency_cap_met_ratio": self.meets_latency_cap / n,
            "stale_intensity_ratio": self.stale_intensity / n,
            "by_policy": dict(self.by_policy),
            "by_reason": dict(self.by_reason),
            "by_model_region": dict(self.by_model_region),
            "tenants": {
                t: {
                    "decisions": s.decisions,
                    "co2_g": s.co2_g,
                    "budget_g": s.budget_g,
                    "max_window_spend_g": s.max_window_spend_g,
                    "decisions_over_budget": s.decisions_over_budget,
                }
                for t, s in sorted(self.tenants.items())
            },
        }


def _num(rec: dict[str, Any], key: str) -> float | None:
    return number(rec.get(key))


def summarise(rows: list[DecisionRow]) -> Summary:
    s = Summary()
    for row in rows:
        rec = row.record
        if rec is None:
            continue
        s.decisions += 1
        ts = rec.get("ts_ms")
        if isinstance(ts, int):
            s.first_ts_ms = ts if s.first_ts_ms is None else min(s.first_ts_ms, ts)
            s.last_ts_ms = ts if s.last_ts_ms is None else max(s.last_ts_ms, ts)
        co2 = _num(rec, "co2_g") or 0.0
        acc = _num(rec, "accuracy_est")
        lat = _num(rec, "latency_p95_ms_est")
        floor, cap = _num(rec, "floor"), _num(rec, "latency_cap_ms")
        s.co2_g += co2
        s.accuracy_est_sum += acc or 0.0
        s.meets_floor += int(acc is not None and floor is not None and acc >= floor)
        s.meets_latency_cap += int(lat is not None and cap is not None and lat <= cap)
        s.by_policy[str(rec.get("policy"))] += 1
        s.by_reason[str(rec.get("reason"))] += 1
        s.by_model_region[f"{rec.get('model')}@{rec.get('region')}"] += 1
        intensity = rec.get("intensity")
        s.stale_intensity += int(isinstance(intensity, dict) and bool(intensity.get("stale")))
        t = s.tenants[str(rec.get("tenant"))]
        t.decisions += 1
        t.co2_g += co2
        budget = _num(rec, "budget_g")
        spend = (_num(rec, "window_spend_g_before") or 0.0) + co2
        t.max_window_spend_g = max(t.max_window_spend_g, spend)
        if budget is not None:
            t.budget_g = budget
            t.decisions_over_budget += int(spend > budget)
    return s
