"""Draw views as PNG figures with matplotlib (Agg: no display needed).

Source-agnostic: a ``PanelData`` is what one panel shows, whether it was queried from the
metrics store or computed from the decisions topic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes


@dataclass
class Line:
    label: str
    timestamps_s: list[float]
    values: list[float]


@dataclass
class PanelData:
    title: str
    unit: str
    kind: str  # "timeseries" | "stat"
    lines: list[Line] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    stacked: bool = False

    @property
    def empty(self) -> bool:
        return not self.stats and not any(line.values for line in self.lines)


@dataclass
class ViewData:
    slug: str
    title: str
    description: str
    panels: list[PanelData]


def format_value(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if unit == "percentunit":
        return f"{100 * value:.1f} %"
    suffix = {"massg": " g", "ms": " ms", "s": " s", "joule": " J", "reqps": " /s"}.get(unit, "")
    return f"{value:,.4g}{suffix}"


def draw_view(view: ViewData, path: Path) -> Path:
    panels = view.panels
    cols = 2
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(13, 3.6 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        _draw_panel(ax, panel)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(view.title, fontsize=14)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _draw_panel(ax: Axes, panel: PanelData) -> None:
    ax.set_title(panel.title, fontsize=10)
    if panel.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    if panel.kind == "stat":
        text = "\n".join(f"{k}: {format_value(v, panel.unit)}" for k, v in panel.stats.items())
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=16, transform=ax.transAxes)
        ax.axis("off")
        return
    lines = sorted(panel.lines, key=lambda line: line.label)[:12]  # keep legends readable
    for line in lines:
        xs = [datetime.fromtimestamp(t, UTC) for t in line.timestamps_s]
        ax.plot(xs, line.values, label=line.label, linewidth=1.2)  # type: ignore[arg-type]
    fmt = mdates.DateFormatter("%H:%M", tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(fmt)
    ax.set_ylabel(
        {"massg": "g CO2", "percentunit": "ratio", "ms": "ms", "s": "s"}.get(panel.unit, "")
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
