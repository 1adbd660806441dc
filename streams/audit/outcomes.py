"""Observed outcomes of the audited decisions, joined from the completions topic by request id.

Decision records hold estimates; what actually happened (serving latency, correctness, measured
energy) arrives later as completion telemetry. Realised CO2 is measured energy priced with the
intensity the decision used and the region's PUE. The serving latency excludes the client
network, so "over the latency cap" here is a lower bound on real SLO misses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.audit.reader import DecisionRow, ReadRange, read_decisions
from streams.config import Settings
from streams.core import Catalog
from streams.core.context import J_PER_KWH


@dataclass
class OutcomeSummary:
    decisions: int = 0
    completed: int = 0
    graded: int = 0
    correct: int = 0
    over_cap: int = 0
    latency_p95_ms: float | None = None
    metered: int = 0
    co2_realised_g: float = 0.0
    co2_est_g_metered: float = 0.0
    unmatched_completions: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "completed": self.completed,
            "completed_ratio": self.completed / self.decisions if self.decisions else 0.0,
            "accuracy_observed": self.correct / self.graded if self.graded else None,
            "graded": self.graded,
            "serving_latency_p95_ms": self.latency_p95_ms,
            "over_latency_cap_ratio": self.over_cap / self.completed if self.completed else None,
            "metered": self.metered,
            "co2_realised_g": self.co2_realised_g,
            "co2_estimated_g_same_requests": self.co2_est_g_metered,
        }


def join_outcomes(
    rows: list[DecisionRow], completions: list[DecisionRow], catalog: Catalog
) -> OutcomeSummary:
    decided = {str(r.record["request_id"]): r.record for r in rows if r.record is not None}
    out = OutcomeSummary(decisions=len(decided))
    latencies: list[float] = []
    seen: set[str] = set()
    for row in completions:
        c = row.record
        if c is None:
            continue
        rid = str(c.get("request_id"))
        rec = decided.get(rid)
        if rec is None:
            out.unmatched_completions += 1
            continue
        if rid in seen:  # redelivered telemetry counts once
            continue
        seen.add(rid)
        out.completed += 1
        lat = c.get("latency_ms")
        if isinstance(lat, int | float):
            latencies.append(float(lat))
            out.over_cap += int(float(lat) > float(rec.get("latency_cap_ms") or float("inf")))
        if isinstance(c.get("correct"), bool):
            out.graded += 1
            out.correct += int(c["correct"])
        energy = c.get("energy_j")
        zi = rec.get("intensity") or {}
        if isinstance(energy, int | float) and isinstance(
            zi.get("intensity_g_per_kwh"), int | float
        ):
            try:
                pue = float(catalog.pue[catalog.region_index[str(rec.get("region"))]])
            except (KeyError, IndexError):
                continue
            out.metered += 1
            out.co2_realised_g += float(energy) / J_PER_KWH * zi["intensity_g_per_kwh"] * pue
            out.co2_est_g_metered += float(rec.get("co2_g") or 0.0)
    if latencies:
        out.latency_p95_ms = float(np.percentile(latencies, 95))
    return out


def read_completions(
    settings: Settings, rows: list[DecisionRow], lateness_ms: int, idle_ms: int
) -> list[DecisionRow]:
    """Completions whose event time can belong to the audited decisions (they come after)."""
    times = [t for r in rows if r.record and isinstance(t := r.record.get("ts_ms"), int)]
    if not times:
        return []
    topic = settings.topics.name(settings.topics.completions)
    rng = ReadRange(start_ms=min(times), end_ms=max(times) + lateness_ms, lateness_ms=lateness_ms)
    try:
        return read_decisions(settings, rng, topic=topic, idle_ms=idle_ms)
    except LookupError:
        return []
