"""Estimator health and consumer lag from a real worker: decide, serve with ``gar fleet``, and
every estimator-health dashboard query returns this worker's data from the real store."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from app.helpers import (
    SMALL_CATALOG,
    produce,
    read_all,
    request_bytes,
    settings_env,
    start_worker,
    write_catalog,
)
from streams.app.admin import ensure_topics
from streams.app.topics import TopicLayout, topic_specs
from streams.config import Settings
from streams.core.intensity import IntensityReading
from streams.metrics.query import PromClient
from streams.report.views import ESTIMATORS, substitute
from streams.schema import encode, intensity_record

pytestmark = pytest.mark.integration
MODELS = [m["name"] for m in SMALL_CATALOG["models"]]
T0_MS = 1_672_531_200_000
N = 400
STEP_S = 5.0


def _has(prom: PromClient, expr: str) -> bool:
    return any(math.isfinite(v) for s in prom.query(expr) for v in s.values)


def test_worker_exports_estimator_health_and_lag(settings_factory: Any, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "catalog.json")
    settings: Settings = settings_factory(worker={"catalog_path": str(catalog)})
    prom = PromClient(settings.influx.url)
    run_id = f"t{uuid.uuid4().hex[:10]}"
    metrics_env = {"GAR_INFLUX__ENABLED": "true", "GAR_INFLUX__WORKER_TAG": run_id,
                   "GAR_INFLUX__FLUSH_INTERVAL_MS": "200"}
    lay = TopicLayout.from_settings(settings, MODELS)
    asyncio.run(ensure_topics(settings, topic_specs(settings, MODELS)))
    readings = [IntensityReading("GB", 200.0, T0_MS, "test", "average", False),
                IntensityReading("US-MIDA-PJM", 400.0, T0_MS, "test", "average", False)]
    asyncio.run(produce(settings, lay.carbon_intensity,
                        [(r.zone.encode(), encode(intensity_record(r))) for r in readings]))
    started_s = time.time()
    worker = start_worker(settings, tmp_path / "w1.log", env=metrics_env)
    try:
        asyncio.run(produce(settings, lay.requests, [
            (f"t{i % 4}".encode(), request_bytes(i, f"t{i % 4}", T0_MS + 60_000 + i * 100))
            for i in range(N)]))
        out = asyncio.run(read_all(settings, [lay.decisions],
                                   lambda o: len(o[lay.decisions]) >= N, 120.0))
        assert len(out[lay.decisions]) == N, worker.log()[-3000:]
    finally:
        worker.stop()
    # Serve everything while no worker runs, so the restarted one reads the telemetry in large
    # batches (the observed p95 needs >= 20 completions of a candidate in one batch).
    gar = Path(sys.executable).with_name("gar")
    fleet = subprocess.run(
        [str(gar), "fleet", "--catalog", str(catalog), "--max-messages", str(N),
         "--idle-timeout", "15", "--group-id", f"{run_id}-fleet"],
        env=settings_env(settings), capture_output=True, timeout=180,
    )
    assert fleet.returncode == 0, fleet.stderr.decode()[-2000:]
    worker = start_worker(settings, tmp_path / "w2.log", env=metrics_env)
    mine = prom.with_labels(worker=run_id)
    try:
        deadline = time.monotonic() + 90
        wanted = ("gar_estimator_latency_p95_error_ms", "gar_estimator_accuracy_error",
                  f'gar_consumer_lag_messages{{topic="{lay.completions}"}}')
        while time.monotonic() < deadline and not all(
            _has(mine, f"last_over_time({m}[10m])") for m in wanted
        ):
            mine.force_flush()
            time.sleep(1.0)
    finally:
        worker.stop()
    mine.force_flush()

    last_s = time.time() + 1
    start_s = started_s - STEP_S
    range_s = last_s - start_s
    empty = []
    for panel in ESTIMATORS.panels:
        for q in panel.queries:
            expr = substitute(q.expr, STEP_S, range_s)
            series = (mine.query(expr, last_s) if panel.kind == "stat"
                      else mine.query_range(expr, start_s, last_s, STEP_S))
            if not [v for s in series for v in s.values if math.isfinite(v)]:
                empty.append(f"{panel.title}: {expr}")
    assert not empty, "\n".join(empty) + "\n" + worker.log()[-2000:]
    lag = mine.query("last_over_time(gar_consumer_lag_messages[10m])")
    assert {s.labels.get("topic") for s in lag} >= {lay.completions}, lag
