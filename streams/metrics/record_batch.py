"""Metrics from decision records (``Decision.to_record()`` dicts, e.g. read back from the
decisions topic by ``gar metrics-backfill`` and the decisions report): one call per batch of
records, with the always-largest baseline's CO2 for the same request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streams.core import Catalog
from streams.metrics.measurements import (
    BudgetSample,
    DatasetDecisions,
    DecisionSample,
    DualSample,
    IntensitySample,
    Metrics,
)


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
    by_dataset: dict[str, list[float]] = {}
    for r in records:
        floor = number(r.get("floor"))
        if floor is not None:
            g = by_dataset.setdefault(str(r.get("dataset")), [0.0, 0.0, 0.0])
            g[0] += 1
            g[1] += number(r.get("accuracy_est")) or 0.0
            g[2] = floor
    metrics.dataset_decisions(dataset_samples(by_dataset), ts_ms)
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


def dataset_samples(by_dataset: Mapping[str, list[float]]) -> list[DatasetDecisions]:
    return [DatasetDecisions(d, int(g[0]), g[1], g[2]) for d, g in by_dataset.items()]
