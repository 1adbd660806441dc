"""Every dashboard panel against a REAL worker run: a ``gar worker`` routes requests (some of
them poison) under a policy with floors and budgets, ``gar fleet`` serves them, a restarted
worker reads the telemetry, all writing to the real InfluxDB. Then every panel's Flux, as
Grafana would send it, must return the series it plots (every ``{label}`` of its legend
present), the variables must list and filter this run, and ``gar report`` must render it and
name the offenders."""

from __future__ import annotations

import asyncio
import math
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.cli import ops_cli
from support.worker import (
    SMALL_CATALOG,
    produce,
    read_all,
    request_bytes,
    settings_env,
    start_worker,
    write_catalog,
)
from typer.testing import CliRunner

from streams.config import Settings
from streams.core.intensity import IntensityReading
from streams.kafka.admin import ensure_topics
from streams.kafka.topics import TopicLayout, topic_specs
from streams.metrics.query import FluxClient
from streams.report.flux import interpolate, variable_values
from streams.report.store import panel_series
from streams.report.views import BUDGETS, DASHBOARDS
from streams.schema import encode, intensity_record

pytestmark = pytest.mark.integration
MODELS = [m["name"] for m in SMALL_CATALOG["models"]]
T0_MS = 1_672_531_200_000
HOUR_MS = 3_600_000
N = 400
N_POISON = 6
TENANTS = [f"t{i}" for i in range(4)]
STEP_S = 5.0
LEGEND_LABEL = re.compile(r"\{(\w+)\}")
# t0 gets a budget it overspends at once; the others a generous one
POLICY = {
    "schema_version": 1,
    "scope": "global",
    "policy_name": "gar-pd",
    "config": {
        "version": "dash.1",
        "floors": {"gsm8k": 0.85},
        "latency_slo_ms": 6000.0,
        "budgets_g": {"t0": 1e-6, "t1": 100.0, "t2": 100.0, "t3": 100.0},
    },
}


def _has(client: FluxClient, measurement: str, field: str, run_id: str, **tags: str) -> bool:
    where = "".join(f' and r.{k} == "{v}"' for k, v in tags.items())
    flux = (
        f'from(bucket: "{client.bucket}") |> range(start: -30m) |> filter(fn: (r) => '
        f'r._measurement == "{measurement}" and r._field == "{field}" and r.worker == "{run_id}"'
        f"{where}) |> last()"
    )
    return any(s.values for s in client.query(flux))


def test_every_panel_returns_its_series_after_a_real_worker_run(
    settings_factory: Any, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path / "catalog.json")
    settings: Settings = settings_factory(worker={"catalog_path": str(catalog)})
    client = FluxClient(settings.influx)
    run_id = f"t{uuid.uuid4().hex[:10]}"
    metrics_env = {
        "GAR_INFLUX__ENABLED": "true",
        "GAR_INFLUX__WORKER_TAG": run_id,
        "GAR_INFLUX__FLUSH_INTERVAL_MS": "200",
    }
    lay = TopicLayout.from_settings(settings, MODELS)
    asyncio.run(ensure_topics(settings, topic_specs(settings, MODELS)))
    asyncio.run(produce(settings, lay.policy, [(b"global", orjson.dumps(POLICY))]))
    readings = [
        IntensityReading("GB", 200.0, T0_MS, "test", "average", False),
        # three hours old when the requests arrive: priced as stale
        IntensityReading("US-MIDA-PJM", 400.0, T0_MS - 3 * HOUR_MS, "test", "average", True),
    ]
    asyncio.run(
        produce(
            settings,
            lay.carbon_intensity,
            [(r.zone.encode(), encode(intensity_record(r))) for r in readings],
        )
    )
    started_s = time.time()
    worker = start_worker(settings, tmp_path / "w1.log", env=metrics_env)
    try:
        items = [
            (TENANTS[i % 4].encode(), request_bytes(i, TENANTS[i % 4], T0_MS + 60_000 + i * 100))
            for i in range(N)
        ]
        items += [(b"t1", b"{not json")] * (N_POISON // 2)
        items += [(b"t2", request_bytes(N + i, "t2", T0_MS, input_tokens=-5)) for i in range(3)]
        asyncio.run(produce(settings, lay.requests, items))
        out = asyncio.run(
            read_all(
                settings,
                [lay.decisions, lay.dead_letter],
                lambda o: len(o[lay.decisions]) >= N and len(o[lay.dead_letter]) >= N_POISON,
                120.0,
            )
        )
        assert len(out[lay.decisions]) == N, worker.log()[-3000:]
    finally:
        worker.stop()
    # Serve everything while no worker runs, so the restarted one reads the telemetry in large
    # batches (the observed p95 needs >= 20 completions of a candidate in one batch).
    gar = Path(sys.executable).with_name("gar")
    fleet = subprocess.run(
        [
            str(gar),
            "fleet",
            "--catalog",
            str(catalog),
            "--max-messages",
            str(N),
            "--idle-timeout",
            "15",
            "--group-id",
            f"{run_id}-fleet",
        ],
        env=settings_env(settings),
        capture_output=True,
        timeout=180,
    )
    assert fleet.returncode == 0, fleet.stderr.decode()[-2000:]
    worker = start_worker(settings, tmp_path / "w2.log", env=metrics_env)
    try:
        deadline = time.monotonic() + 90
        wanted = [
            ("gar_estimator_latency", "p95_obs_ms", {}),
            ("gar_accuracy", "correct_count", {}),
            ("gar_consumer", "lag_messages", {"topic": lay.completions}),
            ("gar_consumer", "uncommitted_messages", {"topic": lay.completions}),
            ("gar_event_loop", "lag_max_ms", {}),
        ]
        while time.monotonic() < deadline and not all(
            _has(client, m, f, run_id, **tags) for m, f, tags in wanted
        ):
            time.sleep(1.0)
    finally:
        worker.stop()

    start_s, end_s = started_s - STEP_S, time.time() + 1
    mine = {"worker": [run_id]}
    problems = []
    for board in DASHBOARDS:
        for panel in board.panels:
            found = panel_series(
                client, panel, start_s=start_s, end_s=end_s, step_s=STEP_S, variables=mine
            )
            for i, q in enumerate(panel.queries):
                series = [s for j, s in found if j == i and any(map(math.isfinite, s.values))]
                where = f"{board.uid} / {panel.title} / query {i}"
                if not series:
                    problems.append(f"{where}: no data")
                needed = set(LEGEND_LABEL.findall(q.legend))
                for s in series:
                    if not needed <= set(s.labels):
                        problems.append(f"{where}: labels {s.labels} lack {needed}")
    assert not problems, "\n".join(problems) + "\n" + worker.log()[-2000:]

    # Variables list this run's values, and choosing one filters the panels.
    values = _variable(client, "tenant", start_s, end_s)
    assert set(TENANTS) <= values
    assert run_id in _variable(client, "worker", start_s, end_s)
    assert _variable(client, "dataset", start_s, end_s) >= {"gsm8k"}
    lam = next(p for p in BUDGETS.panels if p.title.startswith("λ"))
    only = panel_series(
        client,
        lam,
        start_s=start_s,
        end_s=end_s,
        step_s=STEP_S,
        variables={**mine, "tenant": ["t1", "t3"]},
    )
    assert {s.labels["tenant"] for _, s in only} == {"t1", "t3"}

    # gar report renders every panel from the store and names the offenders.
    result = CliRunner().invoke(
        ops_cli(),
        [
            "report",
            "--out",
            str(tmp_path / "report"),
            "--since",
            str(int(start_s * 1000)),
            "--until",
            str(int(end_s * 1000)),
            "--step",
            str(int(STEP_S)),
            "--tag",
            f"worker={run_id}",
        ],
    )
    assert result.exit_code == 0, result.output
    total = sum(len(d.panels) for d in DASHBOARDS)
    assert f"{total}/{total} panels have data" in result.output, result.output
    assert "zones stale: US-MIDA-PJM" in result.output, result.output
    assert "tenants over budget: t0" in result.output, result.output
    page = (tmp_path / "report" / "report.md").read_text()
    assert "zones stale: US-MIDA-PJM" in page and "No data for" not in page


def _variable(client: FluxClient, name: str, start_s: float, end_s: float) -> set[str]:
    flux = interpolate(
        variable_values(name), start_s=start_s, stop_s=end_s, window_s=STEP_S, bucket=client.bucket
    )
    return {str(r.values["_value"]) for t in client.tables(flux) for r in t.records}
