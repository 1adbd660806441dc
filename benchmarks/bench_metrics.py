"""Metrics writer benchmark (not a test): hot-path cost, throughput to the real store, and
what is dropped while the store is down.

    .venv/bin/python benchmarks/bench_metrics.py [--url http://127.0.0.1:18086]

1. hot path: ``record_decision_batch`` on 1000-decision batches made by the core (what the
   router calls per batch), time per batch and per decision, with the writer thread idle;
2. throughput: raw lines through ``MetricsWriter`` -> ``InfluxSink`` -> the real store;
3. store down: the sink points at a closed port; the caller keeps adding at a fixed rate and we
   report how long ``add`` took at worst and how many points were dropped and counted.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.decision_run import make_run

from streams.config import InfluxSettings
from streams.metrics import InfluxSink, Metrics, MetricsWriter
from streams.metrics.decision_metrics import (
    LargestBaseline,
    record_decision_batch,
    record_decisions,
)


class NullSink:
    def write_lines(self, lines: list[str]) -> None:
        pass

    def close(self) -> None:
        pass


def hot_path() -> None:
    run = make_run(batches=10, per_batch=1000)
    batches = [run.records[i : i + 1000] for i in range(0, len(run.records), 1000)]
    writer = MetricsWriter(NullSink(), start=False, buffer_max_points=10**7)
    m = Metrics(writer, worker="bench")
    baseline = LargestBaseline(run.catalog)
    t0 = time.perf_counter()
    reps = 5
    for _ in range(reps):
        for b in batches:
            record_decision_batch(m, b, baseline=baseline, budget_window_s=3600.0)
    dt = time.perf_counter() - t0
    n = reps * len(run.records)
    pts = writer.stats().added_points
    print(
        f"hot path: {dt / (reps * len(batches)) * 1e3:.2f} ms per 1000-decision batch, "
        f"{dt / n * 1e6:.2f} us per decision, {pts / (reps * len(batches)):.0f} points/batch"
    )


def hot_path_objects() -> None:
    run = make_run(batches=10, per_batch=1000)
    writer = MetricsWriter(NullSink(), start=False, buffer_max_points=10**7)
    m = Metrics(writer, worker="bench")
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        for lo in range(0, len(run.decisions), 1000):
            record_decisions(m, run.decisions[lo : lo + 1000], budget_window_s=3600.0)
    dt = time.perf_counter() - t0
    n = reps * len(run.decisions)
    print(
        f"hot path (Decision objects): {dt / (n / 1000) * 1e3:.2f} ms per 1000-decision "
        f"batch, {dt / n * 1e6:.2f} us per decision"
    )


def throughput(url: str) -> None:
    settings = InfluxSettings(url=url)
    writer = MetricsWriter(
        InfluxSink(settings),
        batch_size=5_000,
        buffer_max_points=200_000,
        flush_interval_ms=100,
        start=False,
    )
    tag = f"bench{uuid.uuid4().hex[:6]}"
    now = int(time.time() * 1000)
    n = 200_000
    lines = [f"gar_bench,worker={tag},series=s{i % 500} value={i} {now - n + i}" for i in range(n)]
    writer.add_lines(lines)
    t0 = time.perf_counter()
    stats = writer.flush()
    dt = time.perf_counter() - t0
    print(
        f"throughput: {stats.written_points} points in {dt:.2f} s = "
        f"{stats.written_points / dt:,.0f} points/s (batch 5000), dropped {stats.dropped_points}"
    )
    writer.close()


def store_down() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    settings = InfluxSettings(url=f"http://127.0.0.1:{port}", timeout_ms=500)
    writer = MetricsWriter(
        InfluxSink(settings),
        buffer_max_points=10_000,
        batch_size=1_000,
        flush_interval_ms=100,
        max_retries=3,
        retry_backoff_ms=100,
    )
    worst = 0.0
    added = 0
    end = time.monotonic() + 5.0
    while time.monotonic() < end:  # 5 s at ~20k points/s offered
        t0 = time.perf_counter()
        writer.add_lines([f"gar_bench value={i} 1" for i in range(200)])
        worst = max(worst, time.perf_counter() - t0)
        added += 200
        time.sleep(0.01)
    stats = writer.close(timeout_s=10)
    print(
        f"store down 5 s: offered {added} points, worst add() {worst * 1e3:.2f} ms, "
        f"dropped overflow {stats.dropped_overflow_points}, dropped after retries "
        f"{stats.dropped_write_failed_points}, write errors {stats.write_errors}, "
        f"written {stats.written_points}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=InfluxSettings().url)
    args = ap.parse_args()
    hot_path()
    hot_path_objects()
    throughput(args.url)
    store_down()


if __name__ == "__main__":
    main()
