"""A dashboard as data: panels of queries with a unit, a kind and optional limits (rendered to
Grafana JSON by ``grafana`` and to PNG/HTML by ``gar report``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

G_PER_KWH = "suffix: gCO2eq/kWh"  # a Grafana unit

PanelKind = Literal["timeseries", "stat"]
Role = Literal["value", "threshold"]
OffenderRule = Literal["above", "below_threshold", "above_threshold"]


@dataclass(frozen=True)
class Query:
    flux: str
    legend: str = ""
    """``{label}`` placeholders, e.g. ``{model} @ {region}``; "" = the series' labels."""
    role: Role = "value"


@dataclass(frozen=True)
class Offenders:
    """Name the series that break a limit at the end of the range, e.g. "tenants over budget:
    tenant-a". ``above``: last value > ``limit``; ``below_threshold``/``above_threshold``: last
    value below/above the last value of the threshold series with the same ``label`` (or of
    the only threshold series, when it has no such label)."""

    phrase: str
    label: str
    rule: OffenderRule = "above"
    limit: float = 0.0


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"  # a Grafana unit id
    kind: PanelKind = "timeseries"
    description: str = ""
    stacked: bool = False
    offenders: Offenders | None = None
    threshold: float | None = None
    """A fixed limit drawn as a dashed line (e.g. 100 % of a budget)."""


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)
    variables: tuple[str, ...] = ()
    """Template variables shown on the dashboard (``flux.VARIABLES``)."""
