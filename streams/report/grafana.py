"""Render ``views.DASHBOARDS`` as Grafana dashboard JSON with grafana-foundation-sdk builders
(InfluxDB datasource, Flux queries).

``python -m streams.report.grafana [DIR]`` rewrites ``grafana/dashboards``; a test checks that
the committed files equal what this produces, so the JSON never drifts from the views.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from streams.report import flux as fx
from streams.report.views import DASHBOARDS, Dashboard, Panel, Query

DATASOURCE_UID = "gar-influxdb"
DATASOURCE_TYPE = "influxdb"
DATASOURCE = dm.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
# A development tool: writes the dashboards of this checkout.
DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
_WIDTH = {"stat": 6, "timeseries": 12}
_HEIGHT = {"stat": 4, "timeseries": 8}
_LABEL = re.compile(r"\{(\w+)\}")


class FluxTarget(cogvariants.Dataquery):
    """A Flux query of Grafana's InfluxDB datasource (the SDK ships no InfluxDB query type)."""

    def __init__(self, ref_id: str, query: str) -> None:
        self.ref_id = ref_id
        self.query = query

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
            "query": self.query,
        }


class FluxTargetBuilder(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, ref_id: str, query: str) -> None:
        self._target = FluxTarget(ref_id, query)

    def build(self) -> cogvariants.Dataquery:
        return self._target


def display_name(legend: str) -> str:
    """``{model} @ {region}`` -> ``${__field.labels.model} @ ${__field.labels.region}``."""
    return _LABEL.sub(lambda m: "${__field.labels." + m.group(1) + "}", legend)


def _overrides(queries: tuple[Query, ...]) -> list[tuple[str, list[dm.DynamicConfigValue]]]:
    out = []
    for i, q in enumerate(queries):
        props = []
        if q.legend:
            props.append(dm.DynamicConfigValue(id_val="displayName", value=display_name(q.legend)))
        if q.role == "threshold":
            props += [
                dm.DynamicConfigValue(
                    id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
                ),
                dm.DynamicConfigValue(id_val="custom.lineWidth", value=2),
                dm.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
                dm.DynamicConfigValue(id_val="custom.stacking", value={"mode": "none"}),
            ]
        if props:
            out.append((_ref(i), props))
    return out


def _ref(i: int) -> str:
    return chr(ord("A") + i)


def _timeseries(p: Panel) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .line_width(1)
        .fill_opacity(25 if p.stacked else 0)
        .show_points(common.VisibilityMode.AUTO)  # markers where a series is sparse
        .point_size(5)
        .span_nulls(False)
        .stacking(
            cb.StackingConfig().mode(
                common.StackingMode.NORMAL if p.stacked else common.StackingMode.NONE
            )
        )
        .legend(
            cb.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
    )
    if p.threshold is not None:
        panel = panel.thresholds(
            db.ThresholdsConfig()
            .mode(dm.ThresholdsMode.ABSOLUTE)
            .steps(
                [
                    dm.Threshold(value=None, color="transparent"),
                    dm.Threshold(value=p.threshold, color="red"),
                ]
            )
        ).thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    return panel


def _stat(p: Panel) -> stat.Panel:
    return (
        stat.Panel()
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
    )


def _panel(panel_id: int, p: Panel, x: int, y: int) -> cogbuilder.Builder[dm.Panel]:
    builder: timeseries.Panel | stat.Panel = _timeseries(p) if p.kind == "timeseries" else _stat(p)
    builder = (
        builder.id(panel_id)
        .title(p.title)
        .description(p.description)
        .datasource(DATASOURCE)
        .unit(p.unit)
        .grid_pos(dm.GridPos(h=_HEIGHT[p.kind], w=_WIDTH[p.kind], x=x, y=y))
        .targets([FluxTargetBuilder(_ref(i), q.flux) for i, q in enumerate(p.queries)])
    )
    for ref, props in _overrides(p.queries):
        builder = builder.override_by_query(ref, props)
    return builder


def _variable(name: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(name)
        .datasource(DATASOURCE)
        .query(fx.variable_values(name))
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(fx.ALL)
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def dashboard_json(d: Dashboard) -> dict[str, Any]:
    board = (
        db.Dashboard(d.title)
        .uid(d.uid)
        .description(d.description)
        .tags(["gar"])
        .timezone("utc")
        .editable()
        .refresh("30s")
        .time("now-6h", "now")
        .link(  # the other GAR dashboards, on the same time range and variables
            db.DashboardLink("GAR")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["gar"])
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(True)
        )
    )
    for name in d.variables:
        board = board.with_variable(_variable(name))
    x = y = row_h = 0
    for i, p in enumerate(d.panels, start=1):
        w = _WIDTH[p.kind]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        board = board.with_panel(_panel(i, p, x, y))
        x += w
        row_h = max(row_h, _HEIGHT[p.kind])
    out: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return out


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
    for path in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else DASHBOARD_DIR):
        print(path)
