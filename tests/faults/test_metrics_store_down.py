"""The metrics store goes down (a PRIVATE InfluxDB) while the worker routes: routing continues,
the writer counts the points it had to drop and reports that count through the store itself
once it is back, and metrics resume."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from faults.helpers import (
    TopicReader,
    alive,
    create_topics,
    influx_env,
    layout,
    produce,
    read_until,
    start_worker,
    valid_items,
)
from streams.config import InfluxSettings
from streams.devenv import InfluxStore, private_dev_settings
from streams.metrics.query import FluxClient

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N_UP, N_DOWN, N_BACK = 1_000, 2_000, 1_000


def export(
    influx: InfluxSettings, measurement: str, field: str, tag: str
) -> list[tuple[float, float]]:
    """Raw (timestamp_s, value) points of one field of the worker's series."""
    series = FluxClient(influx).query(
        f'from(bucket: "{influx.bucket}") |> range(start: -1h) |> filter(fn: (r) => '
        f'r._measurement == "{measurement}" and r._field == "{field}" and r.worker == "{tag}")'
    )
    return [(t, v) for s in series for t, v in zip(s.timestamps_s, s.values, strict=True)]


def accounted_at_least(n: int) -> Callable[[TopicReader], bool]:
    return lambda r: len(r.accounted) >= n


def wait_for(pred: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_routing_continues_while_the_metrics_store_is_down(
    settings_factory: Any, catalog_path: Path, tmp_path: Path, unique_id: str
) -> None:
    store = InfluxStore(private_dev_settings(tmp_path / "dev"))
    store.start()
    influx = InfluxSettings(url=store.url)
    settings = settings_factory(
        topics={"partitions": 4}, worker={"catalog_path": str(catalog_path), "batch_max": 200}
    )
    create_topics(settings)
    lay = layout(settings)
    outputs = [lay.decisions, lay.dead_letter]
    tag = f"faults-{unique_id}"

    def decided() -> list[tuple[float, float]]:
        return export(influx, "gar_decisions", "count", tag)

    def dropped_reports() -> list[tuple[float, float]]:
        return export(influx, "gar_metrics_writer", "dropped_points", tag)

    def stored_decisions() -> float:
        return sum(v for _, v in decided())

    env = influx_env(store.url, tag, max_retries="1", retry_backoff_ms="100", timeout_ms="1000")
    worker = start_worker(settings, tmp_path / "w.log", env)
    rates: dict[int, float] = {}
    try:
        phases = [
            valid_items(N_UP, 7),
            valid_items(N_DOWN, 7, start=N_UP),
            valid_items(N_BACK, 7, start=N_UP + N_DOWN),
        ]
        done = 0
        for phase, items in enumerate(phases):
            if phase == 1:
                wait_for(lambda: stored_decisions() >= N_UP, 30.0, "metrics of phase 1")
                # Down: connection refused from now on.
                assert store.stop()
                time.sleep(1.0)
            if phase == 2:
                time.sleep(2.0)  # several failed flushes while down
                store.start()
            t0 = time.monotonic()
            produce(settings, lay.requests, items)
            done += len(items)
            read_until(settings, outputs, accounted_at_least(done), 90.0, lay)
            rates[phase] = len(items) / (time.monotonic() - t0)
            assert alive(worker), worker.log()[-3000:]
        restarted_s = time.time() - 5.0
        # Metrics resume, and the writer's drop count arrives through the store itself.
        wait_for(
            lambda: any(v > 0 for _, v in dropped_reports()),
            30.0,
            "a dropped-points report",
        )
        wait_for(lambda: stored_decisions() >= N_UP + N_BACK, 30.0, "metrics after restart")
        after = [v for t, v in decided() if t >= restarted_s]
        dropped = max(v for _, v in dropped_reports())
        stored = stored_decisions()
    finally:
        worker.stop()
        store.kill()
    reader = read_until(settings, outputs, accounted_at_least(done), 30.0, lay)
    assert len(reader.decided_ids) == N_UP + N_DOWN + N_BACK  # routing never stopped
    assert sum(after) > 0
    total = N_UP + N_DOWN + N_BACK
    assert dropped > 0
    # What the store holds is what was not dropped: phases 1 and 3 in full, phase 2 not.
    assert N_UP + N_BACK <= stored < total
    print(
        f"\nmetrics store down: decided={len(reader.decided_ids)} rates_per_s="
        f"{ {k: round(v) for k, v in rates.items()} } dropped_points={dropped} "
        f"stored_decision_count={stored}"
    )
