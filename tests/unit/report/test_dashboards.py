"""Dashboards as code: they parse, match the views, every panel has Flux that uses only the
variables Grafana fills, the provisioning matches, and (integration) every panel's query returns
data from the real InfluxDB after the real writer wrote a representative run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.paths import REPO_ROOT

from streams.report.flux import VARIABLES, go_duration, interpolate
from streams.report.grafana import DASHBOARD_DIR, DATASOURCE_UID, display_name, file_name, render
from streams.report.views import DASHBOARDS

GRAFANA = REPO_ROOT / "grafana"
GRAFANA_MACROS = {"v.defaultBucket", "v.timeRangeStart", "v.timeRangeStop", "v.windowPeriod"}


def _dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def test_committed_json_is_generated_from_the_views() -> None:
    assert {p.name for p in _dashboard_files()} == {file_name(d) for d in DASHBOARDS}
    for d in DASHBOARDS:
        assert (DASHBOARD_DIR / file_name(d)).read_text(encoding="utf-8") == render(d), (
            "run: python -m streams.report.grafana"
        )


@pytest.mark.parametrize("path", _dashboard_files(), ids=lambda p: p.name)
def test_dashboard_parses_and_every_panel_has_a_flux_query(path: Path) -> None:
    board = json.loads(path.read_text(encoding="utf-8"))
    assert board["uid"] and board["title"] and board["panels"] and board["timezone"] == "utc"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    shown = {v["name"] for v in board["templating"]["list"]}
    assert shown <= set(VARIABLES) and "worker" in shown
    for var in board["templating"]["list"]:
        assert var["datasource"]["uid"] == DATASOURCE_UID and var["includeAll"] and var["multi"]
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == DATASOURCE_UID
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            flux = target["query"]
            assert flux.count("(") == flux.count(")") and flux.count("[") == flux.count("]")
            assert set(re.findall(r"\bv\.\w+", flux)) <= GRAFANA_MACROS, flux
            used = set(re.findall(r"\$\{(\w+):pipe\}", flux))
            assert used <= shown, f"{panel['title']}: {used - shown} not on the dashboard"
            assert not re.findall(r"\$(?!\{\w+:pipe\})", flux), flux
        x, w = panel["gridPos"]["x"], panel["gridPos"]["w"]
        assert x >= 0 and x + w <= 24


def test_legends_become_grafana_display_names() -> None:
    assert (
        display_name("{model} @ {region}") == "${__field.labels.model} @ ${__field.labels.region}"
    )
    board = json.loads((DASHBOARD_DIR / "gar-carbon.json").read_text())
    by_model = next(p for p in board["panels"] if p["title"] == "CO2 per request by model")
    props = by_model["fieldConfig"]["overrides"][0]["properties"]
    assert {"id": "displayName", "value": "${__field.labels.model}"} in props


def test_interpolation_is_what_grafana_sends() -> None:
    flux = (
        'range(start: v.timeRangeStart, stop: v.timeRangeStop) "${tenant:pipe}" '
        "every: v.windowPeriod bucket: v.defaultBucket"
    )
    out = interpolate(
        flux,
        start_s=0,
        stop_s=90.5,
        window_s=60,
        bucket="gar/autogen",
        variables={"tenant": ["a", "b"]},
    )
    assert out == (
        'range(start: 1970-01-01T00:00:00Z, stop: 1970-01-01T00:01:30.5Z) "a|b" every: 1m0s '
        'bucket: "gar/autogen"'
    )
    assert '"__all"' in interpolate('"${tenant:pipe}"', start_s=0, stop_s=1, window_s=1, bucket="b")
    assert [go_duration(s) for s in (5, 60, 3600, 5400)] == ["5s", "1m0s", "1h0m0s", "1h30m0s"]


def test_provisioning_points_at_the_dashboards_datasource() -> None:
    ds = (GRAFANA / "provisioning" / "datasources" / "influxdb.yaml").read_text()
    assert f"uid: {DATASOURCE_UID}" in ds and "type: influxdb" in ds and "version: Flux" in ds
    for var in ("GAR_INFLUX__URL", "GAR_INFLUX__TOKEN", "GAR_INFLUX__ORG", "GAR_INFLUX__BUCKET"):
        assert "${" + var + "}" in ds
    prov = (GRAFANA / "provisioning" / "dashboards" / "gar.yaml").read_text()
    assert "type: file" in prov and "path:" in prov
