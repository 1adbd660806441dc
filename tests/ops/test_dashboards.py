"""Dashboards as code: they parse, match the views, every panel has a query, and (integration)
every query returns data from the real store after the real writer wrote a representative run."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import pytest

from streams.config import REPO_ROOT, InfluxSettings
from streams.metrics import build_metrics
from streams.metrics.query import PromClient
from streams.report.grafana import DASHBOARD_DIR, DATASOURCE_UID, file_name, render
from streams.report.views import BUDGETS, DASHBOARDS, substitute

from .sample_run import TENANTS, TICK_MS, write_sample_run

GRAFANA = REPO_ROOT / "grafana"
KNOWN_VARIABLES = {"$__interval", "$__interval_ms", "$__range", "$tenant"}


def _dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def test_committed_json_is_generated_from_the_views() -> None:
    assert {p.name for p in _dashboard_files()} == {file_name(d) for d in DASHBOARDS}
    for d in DASHBOARDS:
        assert (DASHBOARD_DIR / file_name(d)).read_text(encoding="utf-8") == render(d), (
            "run: python -m streams.report.grafana"
        )


@pytest.mark.parametrize("path", _dashboard_files(), ids=lambda p: p.name)
def test_dashboard_parses_and_every_panel_has_a_query(path: Path) -> None:
    board = json.loads(path.read_text(encoding="utf-8"))
    assert board["uid"] and board["title"] and board["panels"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == DATASOURCE_UID
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.strip(), panel["title"]
            assert expr.count("(") == expr.count(")") and expr.count("[") == expr.count("]")
            assert expr.count("{") == expr.count("}")
            assert set(re.findall(r"\$\w+", expr)) <= KNOWN_VARIABLES, expr
        x, w = panel["gridPos"]["x"], panel["gridPos"]["w"]
        assert x >= 0 and x + w <= 24


def test_provisioning_points_at_the_dashboards_datasource() -> None:
    ds = (GRAFANA / "provisioning" / "datasources" / "victoriametrics.yaml").read_text()
    assert f"uid: {DATASOURCE_UID}" in ds and "type: prometheus" in ds
    prov = (GRAFANA / "provisioning" / "dashboards" / "gar.yaml").read_text()
    assert "type: file" in prov and "path:" in prov


@pytest.mark.integration
def test_every_panel_query_returns_data_from_the_real_store(
    prom: PromClient, influx_settings: InfluxSettings, run_id: str
) -> None:
    metrics = build_metrics(influx_settings)
    end_ms = int(time.time() * 1000)
    start_ms = write_sample_run(metrics, end_ms)
    metrics.close()
    prom.force_flush()
    mine = prom.with_labels(worker=run_id)  # only this run's series, whatever else is stored

    # the run's ticks end two minutes ago; the writer's own points are stamped at close
    step_s = TICK_MS / 1000
    last_s = time.time() + 1
    # grid anchored at the end so the last step sees the writer's own, newest points
    start_s = last_s - math.ceil((last_s - start_ms / 1000) / step_s) * step_s
    range_s = last_s - start_s + step_s
    empty = []
    for board in DASHBOARDS:
        for panel in board.panels:
            for q in panel.queries:
                expr = substitute(q.expr, step_s, range_s)
                if panel.kind == "stat":
                    series = mine.query(expr, last_s)
                else:
                    series = mine.query_range(expr, start_s, last_s, step_s)
                values = [v for s in series for v in s.values if math.isfinite(v)]
                if not values:
                    empty.append(f"{board.uid} / {panel.title}: {expr}")
    assert not empty, "\n".join(empty)

    # the tenant variable: its values come from the store, and choosing one filters the panels
    tenants = mine.label_values("tenant", "gar_decisions_count")
    assert set(TENANTS) <= set(tenants)
    lam = next(p for p in BUDGETS.panels if p.title.startswith("λ")).queries[0].expr
    only = mine.query_range(
        substitute(lam, step_s, range_s, {"tenant": "acme"}), start_s, last_s, step_s
    )
    assert {s.labels["tenant"] for s in only} == {"acme"}
