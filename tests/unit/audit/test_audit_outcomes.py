"""Observed outcomes joined from completion telemetry by request id."""

from __future__ import annotations

import pytest
from support.decision_run import make_run

from streams.audit.outcomes import join_outcomes
from streams.audit.reader import DecisionRow


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


def test_backfill_writes_completions_estimator_error_and_dead_letters() -> None:
    from support.metrics_sink import RecordingSink

    from streams.audit.backfill import backfill
    from streams.metrics import Metrics, MetricsWriter

    run = make_run(batches=2, per_batch=10)
    rows = [DecisionRow("d", 0, i, 0, None, r) for i, r in enumerate(run.records)]
    comps = [
        DecisionRow(
            "c",
            0,
            i,
            0,
            None,
            {
                "request_id": r["request_id"],
                "tenant": r["tenant"],
                "model": r["model"],
                "region": r["region"],
                "dataset": r["dataset"],
                "ts_ms": r["ts_ms"] + 10,
                "latency_ms": 300.0,
                "input_tokens": 100,
                "output_tokens": 150,
                "energy_j": 90.0,
                "correct": True,
            },
        )
        for i, r in enumerate(run.records)
    ]
    dead = [
        DecisionRow(
            "x",
            0,
            0,
            0,
            None,
            {
                "reason": "invalid_json",
                "stage": "decode",
                "source": {
                    "topic": "req",
                    "partition": 0,
                    "offset": 3,
                    "timestamp_ms": run.records[0]["ts_ms"],
                },
            },
        )
    ]
    sink = RecordingSink()
    writer = MetricsWriter(sink, start=False)
    buckets = backfill(
        Metrics(writer, worker="bf"), rows, comps, run.catalog, dead_letters=dead, bucket_ms=60_000
    )
    writer.flush()
    names = {x.split(",")[0] for x in sink.lines}
    assert buckets == 2
    assert {
        "gar_decisions",
        "gar_completions",
        "gar_estimator_energy",
        "gar_estimator_accuracy",
        "gar_dead_letters",
        "gar_budget",
        "gar_duals",
        "gar_intensity",
    } <= names
    completed = sum(
        int(x.split("count=")[1].split("i")[0])
        for x in sink.lines
        if x.startswith("gar_completions")
    )
    assert completed == len(run.records)
