"""Completion telemetry -> completions and estimator-error points (thin adapter, in-memory sink)."""

from __future__ import annotations

import numpy as np
import pytest
from support.decision_run import CATALOG
from support.metrics_sink import RecordingSink

from streams.core import Catalog, Completion, EstimatorState, IntensityReading, IntensityView
from streams.metrics import Metrics, MetricsWriter
from streams.metrics.telemetry import record_completions


def _fields(line: str) -> dict[str, float]:
    out = {}
    for kv in line.split(" ")[1].split(","):
        k, v = kv.split("=")
        out[k] = float(v.rstrip("i"))
    return out


def test_completions_realised_vs_estimated_and_estimator_error() -> None:
    catalog = Catalog.from_dict(CATALOG)
    view = IntensityView.from_readings([IntensityReading("SE", 40.0, 1_000, "test")])
    rng = np.random.default_rng(7)
    comps = [
        Completion(
            f"r{i}",
            "acme",
            "mid-27b",
            "eu-north",
            "gsm8k",
            2_000 + i,
            float(rng.uniform(300, 900)),
            100,
            200,
            energy_j=150.0 + i,
            correct=i % 4 != 0,
        )
        for i in range(40)
    ]
    est = EstimatorState(catalog)
    sink = RecordingSink()
    w = MetricsWriter(sink, start=False, clock_ms=lambda: 1)
    record_completions(Metrics(w), comps, catalog, view, slo_latency_ms=800.0, estimators=est)
    w.flush()
    lines = {x.split(" ")[0].split(",")[0]: x for x in sink.lines}
    c = _fields(lines["gar_completions"])
    pue = 1.1
    assert c["count"] == 40 and c["graded_count"] == 40 and c["correct_count"] == 30
    assert c["co2_realised_g"] == pytest.approx(
        sum(x.energy_j or 0 for x in comps) / 3.6e6 * 40.0 * pue
    )
    assert c["slo_violations"] == sum(x.latency_ms > 800.0 for x in comps)
    lat = _fields(lines["gar_estimator_latency"])
    assert lat["p95_obs_ms"] == pytest.approx(np.percentile([x.latency_ms for x in comps], 95))
    assert lat["p95_error_ms"] == pytest.approx(lat["p95_est_ms"] - lat["p95_obs_ms"])
    en = _fields(lines["gar_estimator_energy"])
    assert en["obs_j_per_token"] == pytest.approx(sum(x.energy_j or 0 for x in comps) / (40 * 300))
    acc = _fields(lines["gar_estimator_accuracy"])
    assert acc["obs"] == 0.75 and acc["est"] == pytest.approx(0.88)  # prior mean, no feedback yet
