"""Render ``views.DASHBOARDS`` as Grafana dashboard JSON (schema 39, Prometheus datasource).

``python -m streams.report.grafana [DIR]`` rewrites ``grafana/dashboards``; a test checks that
the committed files equal what this produces, so the JSON never drifts from the views.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from streams.config import REPO_ROOT
from streams.report.views import DASHBOARDS, VARIABLE_SOURCE, Dashboard, Panel

DATASOURCE_UID = "gar-victoriametrics"
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
DASHBOARD_DIR = REPO_ROOT / "grafana" / "dashboards"
_WIDTH = {"stat": 6, "timeseries": 12, "bargauge": 12}
_HEIGHT = {"stat": 5, "timeseries": 8, "bargauge": 8}


def _panel(panel_id: int, panel: Panel, x: int, y: int) -> dict[str, Any]:
    instant = panel.kind == "stat"
    custom: dict[str, Any] = {}
    if panel.kind == "timeseries":
        custom = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if panel.stacked else 0,
            "stacking": {"mode": "normal" if panel.stacked else "none", "group": "A"},
            "spanNulls": False,
        }
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": _WIDTH[panel.kind], "h": _HEIGHT[panel.kind]},
        "fieldConfig": {"defaults": {"unit": panel.unit, "custom": custom}, "overrides": []},
        "options": (
            {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
            if panel.kind == "stat"
            else {"legend": {"displayMode": "list", "placement": "bottom"}}
        ),
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": q.expr,
                "legendFormat": q.legend,
                "instant": instant,
                "range": not instant,
            }
            for i, q in enumerate(panel.queries)
        ],
    }


def _variable(name: str) -> dict[str, Any]:
    query = f"label_values({VARIABLE_SOURCE[name]}, {name})"
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values"},
        "refresh": 2,  # on time-range change
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def dashboard_json(d: Dashboard) -> dict[str, Any]:
    panels = []
    x = y = 0
    row_h = 0
    for i, p in enumerate(d.panels, start=1):
        w = _WIDTH[p.kind]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        panels.append(_panel(i, p, x, y))
        x += w
        row_h = max(row_h, _HEIGHT[p.kind])
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": ["gar"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [_variable(v) for v in d.variables]},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["gar"], "asDropdown": True, "title": "GAR"}],
        "panels": panels,
    }


def render(d: Dashboard) -> str:
    return json.dumps(dashboard_json(d), indent=2, ensure_ascii=False) + "\n"


def file_name(d: Dashboard) -> str:
    return f"{d.uid}.json"


def write_all(directory: Path = DASHBOARD_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for d in DASHBOARDS:
        path = directory / file_name(d)
        path.write_text(render(d), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else DASHBOARD_DIR):
        print(p)
