"""Dashboards as code: they parse, match the views, every panel has Flux that uses only the
variables Grafana fills, the provisioning matches, and (integration) every panel's query returns
data from the real InfluxDB after the real writer wrote a representative run."""

from __future__ import annotations

import math
import time

import pytest
from support.paths import REPO_ROOT
from support.sample_run import TICK_MS, write_sample_run

from streams.config import InfluxSettings
from streams.metrics import build_metrics
from streams.metrics.query import FluxClient
from streams.report.store import panel_series
from streams.report.views import DASHBOARDS

GRAFANA = REPO_ROOT / "grafana"
GRAFANA_MACROS = {"v.defaultBucket", "v.timeRangeStart", "v.timeRangeStop", "v.windowPeriod"}


@pytest.mark.integration
def test_every_panel_query_returns_data_from_the_real_store(
    flux: FluxClient, influx_settings: InfluxSettings, run_id: str
) -> None:
    metrics = build_metrics(influx_settings)
    end_ms = int(time.time() * 1000)
    start_ms = write_sample_run(metrics, end_ms)
    metrics.close()
    step_s = TICK_MS / 1000
    start_s, last_s = start_ms / 1000 - step_s, time.time() + 1
    empty = []
    for board in DASHBOARDS:
        for panel in board.panels:
            found = panel_series(
                flux,
                panel,
                start_s=start_s,
                end_s=last_s,
                step_s=step_s,
                variables={"worker": [run_id]},  # only this run, whatever else is stored
            )
            for i, _q in enumerate(panel.queries):
                if not any(math.isfinite(v) for j, s in found if j == i for v in s.values):
                    empty.append(f"{board.uid} / {panel.title} / query {i}")
    assert not empty, "\n".join(empty)
