"""Observed outcomes joined from completion telemetry by request id."""

from __future__ import annotations

import pytest

from streams.audit.outcomes import join_outcomes
from streams.audit.reader import DecisionRow

from .decision_run import make_run


def test_join_counts_once_and_prices_measured_energy() -> None:
    run = make_run(batches=2, per_batch=10)
    rows = [DecisionRow("d", 0, i, 0, None, r) for i, r in enumerate(run.records)]
    comps = []
    for i, r in enumerate(run.records[:15]):
        comps.append(
            {
                "request_id": r["request_id"],
                "tenant": r["tenant"],
                "model": r["model"],
                "region": r["region"],
                "ts_ms": r["ts_ms"] + 500,
                "latency_ms": 100.0 * (i + 1),
                "energy_j": 200.0,
                "correct": i % 3 != 0,
            }
        )
    comps.append(dict(comps[0]))  # redelivered
    comps.append({**comps[1], "request_id": "not-decided"})
    crow = [DecisionRow("c", 0, i, 0, None, c) for i, c in enumerate(comps)]
    out = join_outcomes(rows, crow, run.catalog).to_dict()
    assert out["decisions"] == 20 and out["completed"] == 15 and out["graded"] == 15
    assert out["accuracy_observed"] == pytest.approx(10 / 15)
    over = sum(100.0 * (i + 1) > run.records[i]["latency_cap_ms"] for i in range(15))
    assert out["over_latency_cap_ratio"] == pytest.approx(over / 15)
    expect = sum(
        200.0
        / 3.6e6
        * r["intensity"]["intensity_g_per_kwh"]
        * float(run.catalog.pue[run.catalog.region_index[r["region"]]])
        for r in run.records[:15]
    )
    assert out["co2_realised_g"] == pytest.approx(expect)
    assert out["serving_latency_p95_ms"] == pytest.approx(
        sorted(100.0 * (i + 1) for i in range(15))[13] + 0.3 * 100.0
    )
