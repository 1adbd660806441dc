"""Fetch every view's panels from InfluxDB with the dashboards' own Flux."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from streams.metrics.query import FluxClient, Series
from streams.report.figures import Line, PanelData, ViewData
from streams.report.flux import interpolate
from streams.report.views import DASHBOARDS, Dashboard, Panel

_LEGEND_VAR = re.compile(r"\{(\w+)\}")


def legend(template: str, labels: Mapping[str, str]) -> str:
    """A query's ``{label}`` legend, as Grafana's display name renders it."""
    text = _LEGEND_VAR.sub(lambda m: labels.get(m.group(1), ""), template)
    return text or ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"


def panel_series(
    client: FluxClient,
    panel: Panel,
    *,
    start_s: float,
    end_s: float,
    step_s: float,
    variables: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[int, Series]]:
    """Run each of the panel's queries as Grafana would: (query index, series) pairs."""
    out = []
    for i, q in enumerate(panel.queries):
        flux = interpolate(
            q.flux,
            start_s=start_s,
            stop_s=end_s,
            window_s=step_s,
            bucket=client.bucket,
            variables=variables,
        )
        out += [(i, s) for s in client.query(flux)]
    return out


def panel_data(
    client: FluxClient,
    panel: Panel,
    *,
    start_s: float,
    end_s: float,
    step_s: float,
    variables: Mapping[str, Sequence[str]] | None = None,
) -> PanelData:
    data = PanelData(
        panel.title,
        panel.unit,
        panel.kind,
        stacked=panel.stacked,
        threshold=panel.threshold,
        offenders=panel.offenders,
    )
    found = panel_series(
        client, panel, start_s=start_s, end_s=end_s, step_s=step_s, variables=variables
    )
    for i, s in found:
        q = panel.queries[i]
        name = legend(q.legend, s.labels)
        if panel.kind == "stat":
            if s.values and math.isfinite(s.values[-1]):
                data.stats[name] = s.values[-1]
            continue
        data.lines.append(
            Line(name, s.timestamps_s, s.values, threshold=q.role == "threshold", labels=s.labels)
        )
    return data


def views_from_store(
    client: FluxClient,
    start_s: float,
    end_s: float,
    step_s: float,
    variables: Mapping[str, Sequence[str]] | None = None,
    dashboards: Sequence[Dashboard] = DASHBOARDS,
) -> list[ViewData]:
    views = []
    for board in dashboards:
        panels = [
            panel_data(client, p, start_s=start_s, end_s=end_s, step_s=step_s, variables=variables)
            for p in board.panels
        ]
        views.append(ViewData(board.uid, board.title, board.description, panels))
    return views
