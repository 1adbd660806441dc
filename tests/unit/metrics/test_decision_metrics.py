"""Decision records -> metrics in one call per batch (the router's entry point)."""

from __future__ import annotations

import pytest
from support.decision_run import make_run
from support.metrics_sink import RecordingSink

from streams.metrics import Metrics, MetricsWriter
from streams.metrics.decision_metrics import (
    LargestBaseline,
    record_decision_batch,
    record_decisions,
)


def test_baseline_matches_the_core_always_largest_policy() -> None:
    run = make_run()
    largest = {r["request_id"]: r["co2_g"] for r in make_run(policy="always-largest").records}
    baseline = LargestBaseline(run.catalog)
    for rec in run.records:
        assert baseline.co2_g(rec) == pytest.approx(largest[rec["request_id"]], rel=1e-12)


def test_one_batch_becomes_a_few_aggregated_points() -> None:
    run = make_run()
    sink = RecordingSink()
    writer = MetricsWriter(sink, start=False, clock_ms=lambda: 5)
    record_decision_batch(
        Metrics(writer), run.records, baseline=LargestBaseline(run.catalog), budget_window_s=3600.0
    )
    writer.flush()
    lines = [x for x in sink.lines if not x.startswith("gar_metrics_writer")]
    groups = {(r["tenant"], r["model"], r["region"], r["reason"]) for r in run.records}
    decision_lines = [x for x in lines if x.startswith("gar_decisions")]
    assert len(decision_lines) == len(groups)
    assert sum(int(x.split("count=")[1].split("i")[0]) for x in decision_lines) == len(run.records)
    # budgets only for tenants with a budget; duals: one lambda+nu point and a mu point per
    # dataset seen, per tenant
    assert sum(x.startswith("gar_budget") for x in lines) == 2
    last_acme = [r for r in run.records if r["tenant"] == "acme"][-1]
    spend = last_acme["window_spend_g_before"] + last_acme["co2_g"]
    assert any(x.startswith("gar_budget,tenant=acme") and f"spend_g={spend!r}" in x for x in lines)
    assert sum(x.startswith("gar_duals") for x in lines) == 2 * (1 + 2)
    assert sum(x.startswith("gar_accuracy,dataset=") for x in lines) == 2  # per dataset
    assert {x.split(",zone=")[1].split(" ")[0] for x in lines if x.startswith("gar_intensity")}
    assert len(lines) < len(run.records)  # aggregated: fewer points than requests


def test_decision_objects_and_records_give_the_same_points() -> None:
    run = make_run()
    from_records, from_objects = RecordingSink(), RecordingSink()
    w1 = MetricsWriter(from_records, start=False, clock_ms=lambda: 5)
    w2 = MetricsWriter(from_objects, start=False, clock_ms=lambda: 5)
    for lo in range(0, len(run.records), 20):  # the run's own batches
        record_decision_batch(
            Metrics(w1),
            run.records[lo : lo + 20],
            baseline=LargestBaseline(run.catalog),
            budget_window_s=3600.0,
        )
        record_decisions(Metrics(w2), run.decisions[lo : lo + 20], budget_window_s=3600.0)
    w1.flush()
    w2.flush()

    def split(lines: list[str]) -> tuple[list[str], set[str]]:
        zones = {x.split(",zone=")[1].split(" ")[0] for x in lines if x.startswith("gar_intensity")}
        # the writer's own point counts the intensity points too
        other = [x for x in lines if not x.startswith(("gar_intensity", "gar_metrics_writer"))]
        return other, zones

    (objects, object_zones), (records, record_zones) = (
        split(from_objects.lines),
        split(from_records.lines),
    )
    assert objects == records
    # a record carries the chosen region's intensity only; the objects every zone priced
    assert record_zones and record_zones <= object_zones


def test_decision_metrics_sum_batches_into_one_write_per_interval() -> None:
    from streams.metrics.decision_metrics import DecisionMetrics

    run = make_run()
    now = [0.0]
    per_batch, summed = RecordingSink(), RecordingSink()
    w1 = MetricsWriter(per_batch, start=False, clock_ms=lambda: 5)
    w2 = MetricsWriter(summed, start=False, clock_ms=lambda: 5)
    acc = DecisionMetrics(Metrics(w2), interval_s=1.0, clock=lambda: now[0])
    for lo in range(0, len(run.decisions), 20):
        record_decisions(Metrics(w1), run.decisions[lo : lo + 20], budget_window_s=3600.0)
        acc.add(run.decisions[lo : lo + 20])
        acc.flush(budget_window_s=3600.0)  # not due yet: nothing written
    w2.flush()
    assert not [x for x in summed.lines if x.startswith("gar_decisions")]
    now[0] = 1.5
    acc.flush(budget_window_s=3600.0)
    acc.flush(budget_window_s=3600.0, force=True)  # nothing new: writes nothing
    w1.flush()
    w2.flush()

    def totals(lines: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for x in lines:
            if x.startswith("gar_decisions"):
                series = x.split(" ")[0]
                out[series] = out.get(series, 0) + int(x.split("count=")[1].split("i")[0])
        return out

    assert totals(summed.lines) == totals(per_batch.lines)
    assert sum(totals(summed.lines).values()) == len(run.decisions)
    # gauges: the latest value per series, as the last per-batch write had it
    last_budget = [x for x in per_batch.lines if x.startswith("gar_budget,tenant=acme")][-1]
    assert last_budget in summed.lines
    assert len(summed.lines) < len(per_batch.lines)


def test_decision_metrics_background_writes_the_same_lines_in_order() -> None:
    from streams.metrics.decision_metrics import DecisionMetrics

    run = make_run()
    now = [0.0]
    inline, background = RecordingSink(), RecordingSink()
    w1 = MetricsWriter(inline, start=False, clock_ms=lambda: 5)
    w2 = MetricsWriter(background, start=False, clock_ms=lambda: 5)
    a = DecisionMetrics(Metrics(w1), interval_s=1.0, clock=lambda: now[0])
    b = DecisionMetrics(Metrics(w2), interval_s=1.0, clock=lambda: now[0], background=True)
    for lo in range(0, len(run.decisions), 20):
        for acc in (a, b):
            acc.add(run.decisions[lo : lo + 20])
            acc.flush(budget_window_s=3600.0)
        now[0] += 0.6  # a write is due every other batch
    for acc in (a, b):
        acc.flush(budget_window_s=3600.0, force=True)  # waits for the write in flight
    b.close()
    w1.flush()
    w2.flush()
    assert background.lines == inline.lines
    assert sum(1 for x in background.lines if x.startswith("gar_decisions")) > 0


def test_request_latency_histogram_is_cumulative_and_skips_unknown_times() -> None:
    from streams.metrics.decision_metrics import DecisionMetrics
    from streams.metrics.measurements import LATENCY_BUCKETS_MS

    sink = RecordingSink()
    metrics = DecisionMetrics(Metrics(MetricsWriter(sink, start=False, clock_ms=lambda: 5)))
    decided_ms = 1_000_000
    # appended 3, 3, 40 and 50_000 ms before the decision, one without a broker timestamp
    metrics.add_request_latency([decided_ms - 3, decided_ms - 3, None, decided_ms - 40], decided_ms)
    metrics.add_request_latency([decided_ms - 50_000], decided_ms)
    metrics.flush(budget_window_s=3600.0, force=True)
    assert metrics._metrics.writer is not None
    metrics._metrics.writer.flush()
    buckets = {
        x.split(",le=")[1].split(" ")[0]: int(x.split("bucket=")[1].split("i")[0])
        for x in sink.lines
        if x.startswith("gar_decision_latency,le=")
    }
    bounds = [str(b) for b in LATENCY_BUCKETS_MS] + ["+Inf"]
    assert list(buckets) == sorted(buckets, key=bounds.index)
    assert buckets["2"] == 0 and buckets["5"] == 2 and buckets["50"] == 3
    assert buckets["30000"] == 3 and buckets["+Inf"] == 4
    (total,) = [x for x in sink.lines if x.startswith("gar_decision_latency count=")]
    assert "count=4i" in total and "max_ms=50000.0" in total
