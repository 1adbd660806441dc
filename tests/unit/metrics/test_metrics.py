"""Unit tests of the writer and the typed API with an in-memory sink (thin adapter: mocks ok)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from influxdb_client.client.write.point import Point
from support.metrics_sink import RecordingSink

from streams.metrics import (
    BudgetSample,
    CompletionSample,
    DecisionSample,
    DualSample,
    IntensitySample,
    Metrics,
    MetricsWriter,
)
from streams.metrics.line import encode


def _writer(sink: RecordingSink, **kw: object) -> MetricsWriter:
    delays: list[float] = []
    w = MetricsWriter(
        sink,
        start=False,
        clock_ms=lambda: 1_000,
        sleep_s=delays.append,
        **kw,  # type: ignore[arg-type]
    )
    w.delays = delays  # type: ignore[attr-defined]
    return w


@pytest.mark.parametrize(
    ("tags", "fields"),
    [
        ({"tenant": "a b", "model": "x,y", "region": "k=v"}, {"co2_g": 1.25, "count": 3}),
        ({"zone": "US-CAL-CISO"}, {"g_per_kwh": 231.5, "stale": True}),
    ],
)
def test_line_encoding_matches_influxdb_client(
    tags: dict[str, str], fields: dict[str, float | int | bool]
) -> None:
    ours = encode("gar_test", tags, fields, 123)
    p: Any = Point("gar_test")  # type: ignore[no-untyped-call]
    p = p.time(123, write_precision="ms")
    for tag, text in tags.items():
        p = p.tag(tag, text)
    for name, value in fields.items():
        p = p.field(name, value)
    assert ours == p.to_line_protocol()


def test_non_finite_fields_are_skipped_and_empty_tags_omitted() -> None:
    assert encode("m", {"a": ""}, {"x": float("nan"), "y": 2.0}, 5) == "m y=2.0 5"
    assert encode("m", {}, {"x": float("inf")}, 5) is None


def test_overflow_drops_and_counts_and_reports_itself() -> None:
    sink = RecordingSink()
    w = _writer(sink, buffer_max_points=10, batch_size=4)
    dropped = w.add_lines(f"m v={i} 1" for i in range(25))
    assert dropped == 15
    stats = w.flush()
    assert stats.dropped_overflow_points == 15
    assert stats.written_points == 11  # 10 data lines + 1 self-metrics line
    data = [x for x in sink.lines if x.startswith("m ")]
    assert data == [f"m v={i} 1" for i in range(10)]
    assert max(len(b) for b in sink.batches) <= 4
    self_line = next(x for x in sink.lines if x.startswith("gar_metrics_writer"))
    assert "dropped_overflow_points=15i" in self_line


def test_retries_with_exponential_backoff_then_succeeds() -> None:
    sink = RecordingSink(fail_times=2)
    w = _writer(sink, max_retries=3, retry_backoff_ms=100)
    w.add_lines(["m v=1 1"])
    stats = w.flush()
    assert w.delays == [0.1, 0.2]  # type: ignore[attr-defined]
    assert stats.write_errors == 2
    assert stats.dropped_points == 0
    assert "m v=1 1" in sink.lines


def test_batch_dropped_and_counted_after_retries_exhausted() -> None:
    sink = RecordingSink(fail_times=100)
    w = _writer(sink, max_retries=2, retry_backoff_ms=10, batch_size=3)
    w.add_lines(f"m v={i} 1" for i in range(7))
    stats = w.flush()
    # first batch of 3 fails three times and is dropped; the rest waits for the next flush
    assert stats.dropped_write_failed_points == 3
    assert stats.buffered_points == 4
    assert w.delays[:2] == [0.01, 0.02]  # type: ignore[attr-defined]


def test_add_does_not_wait_for_a_stuck_store() -> None:
    release = threading.Event()
    entered = threading.Event()

    class StuckSink(RecordingSink):
        def write_lines(self, lines: list[str]) -> None:
            entered.set()
            release.wait(30)
            super().write_lines(lines)

    sink = StuckSink()
    w = MetricsWriter(sink, buffer_max_points=100, batch_size=1, flush_interval_ms=10)
    w.add_lines(["m v=0 1"])
    assert entered.wait(10)  # the background thread is now blocked inside the sink
    dropped = sum(w.add_lines([f"m v={i} 1"]) for i in range(1, 500))
    assert dropped == 499 - 100  # the buffer kept 100, counted the rest; add() never blocked
    release.set()
    stats = w.close()
    assert stats.dropped_overflow_points == 399
    assert sink.closed


def test_decisions_aggregate_per_tag_set() -> None:
    sink = RecordingSink()
    w = _writer(sink)
    m = Metrics(w, worker="w1")
    samples = [
        DecisionSample("t1", "llama-8b", "eu", "optimal", "gar-pd", 0.5, 0.8, 100.0, 2.0)
        for _ in range(30)
    ] + [DecisionSample("t1", "llama-70b", "us", "fallback", "gar-pd", 3.0, 0.9, 300.0)]
    m.decisions(samples, ts_ms=7)
    w.flush()
    lines = [x for x in sink.lines if x.startswith("gar_decisions")]
    assert len(lines) == 2
    small = next(x for x in lines if "llama-8b" in x)
    assert "count=30i" in small and "co2_est_g=15.0" in small and "co2_baseline_g=60.0" in small
    assert "worker=w1" in small and small.endswith(" 7")
    big = next(x for x in lines if "llama-70b" in x)
    assert "co2_baseline_g" not in big and "reason=fallback" in big


def test_typed_api_writes_every_measurement() -> None:
    sink = RecordingSink()
    w = _writer(sink)
    m = Metrics(w)
    m.completions(
        [CompletionSample("t", "m", "r", 500.0, 0.4, 0.5, 900.0, True, slo_latency_ms=400.0)]
    )
    m.budgets([BudgetSample("t", spend_g=50.0, budget_g=200.0, window_s=3600.0)])
    m.duals([DualSample("t", 0.3, 0.0, {"gsm8k": 1.5})])
    m.intensity([IntensitySample("DE", 400.0, 120.0, "emaps", "average", False, False)])
    m.dead_letters({("bad_json", "parse"): 3})
    m.throughput("route", 1000, 0.5)
    m.event_loop(12.5, 0.75, 100)
    m.event_loop(99.0, 9.0, 0)  # an empty window is not a measurement
    w.flush()
    text = "\n".join(sink.lines)
    assert "gar_event_loop lag_max_ms=12.5,lag_mean_ms=0.75,samples=100i" in text
    assert "lag_max_ms=99.0" not in text
    assert "slo_violations=1i" in text and "correct_count=1i" in text
    assert "used_ratio=0.25" in text
    assert "gar_duals,tenant=t lambda=0.3,nu=0.0 " in text
    assert "gar_duals,dataset=gsm8k,tenant=t mu=1.5 " in text
    # a reading's flags are booleans and its provenance strings, all fields of one zone series
    assert (
        "gar_intensity,zone=DE g_per_kwh=400.0,age_s=120.0,stale=false,estimated=false,"
        'source="emaps",signal_type="average" ' in text
    )
    assert "gar_dead_letters,reason=bad_json,stage=parse count=3i" in text
    assert "msg_per_s=2000.0" in text


def test_disabled_metrics_are_noops() -> None:
    m = Metrics(None)
    m.decisions([DecisionSample("t", "m", "r", "x", "p", 1.0, 1.0, 1.0)])
    m.flush()
    m.close()


def test_down_store_warns_once_and_close_counts_what_was_never_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = RecordingSink(fail_times=10**6)
    w = _writer(sink, max_retries=2, retry_backoff_ms=1, batch_size=10)
    w.add_lines(f"m v={i} 1" for i in range(35))
    with caplog.at_level("WARNING", logger="streams.metrics.writer"):
        for _ in range(3):
            w.flush()
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1  # not one per attempt: a down store must not flood the log
    stats = w.close()
    assert stats.buffered_points == 0
    assert stats.dropped_points == 35  # 3 failed batches + the 5 left at close
    assert sink.closed
