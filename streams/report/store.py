"""Fetch every view's panels from the metrics store with the dashboards' own queries."""

from __future__ import annotations

import math
import re

from streams.metrics.query import PromClient, Series
from streams.report.figures import Line, PanelData, ViewData
from streams.report.views import DASHBOARDS, substitute

_LEGEND_VAR = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's ``{{label}}`` legend format."""
    text = _LEGEND_VAR.sub(lambda m: labels.get(m.group(1), ""), template)
    return text or ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"


def _finite(series: Series) -> tuple[list[float], list[float]]:
    pairs = [
        (t, v) for t, v in zip(series.timestamps_s, series.values, strict=True) if math.isfinite(v)
    ]
    return [t for t, _ in pairs], [v for _, v in pairs]


def views_from_store(
    prom: PromClient, start_s: float, end_s: float, step_s: float
) -> list[ViewData]:
    range_s = end_s - start_s
    views = []
    for board in DASHBOARDS:
        panels = []
        for panel in board.panels:
            data = PanelData(panel.title, panel.unit, panel.kind, stacked=panel.stacked)
            for q in panel.queries:
                expr = substitute(q.expr, step_s, range_s)
                if panel.kind == "stat":
                    for s in prom.query(expr, end_s):
                        if s.values and math.isfinite(s.values[-1]):
                            data.stats[legend(q.legend, s.labels)] = s.values[-1]
                else:
                    for s in prom.query_range(expr, start_s, end_s, step_s):
                        ts, vs = _finite(s)
                        data.lines.append(Line(legend(q.legend, s.labels), ts, vs))
            panels.append(data)
        views.append(ViewData(board.uid, board.title, board.description, panels))
    return views
