"""Draw views as PNG figures with matplotlib (Agg: no display needed).

Source-agnostic: a ``PanelData`` is what one panel shows, whether it was queried from the
metrics store or computed from the decisions topic. What a reader needs from a figure: every
panel of a view on one UTC time axis with dates, markers where a series is sparse, colours
that stay distinct past ten series, legends beside (not over) the data, limits drawn dashed,
and the series that break a limit named in the panel.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from streams.report.views import Offenders

SPARSE_POINTS = 30  # a series with fewer points (or with gaps) is drawn with markers
MAX_LINES = 40  # per panel; the rest are counted in the legend title
# 60 colours: tab20's ten strong hues first, then their light twins, then tab20b and tab20c
# hue by hue, so neighbours in the legend never share a hue before the 11th series.
_PALETTE = [
    plt.get_cmap(name)(i)
    for name, order in (
        ("tab20", [*range(0, 20, 2), *range(1, 20, 2)]),
        ("tab20b", [i + k for k in range(4) for i in range(0, 20, 4)]),
        ("tab20c", [i + k for k in range(4) for i in range(0, 20, 4)]),
    )
    for i in order
]
_LIMIT_COLOUR = "firebrick"
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


@dataclass
class Line:
    label: str
    timestamps_s: list[float]
    values: list[float]
    threshold: bool = False  # a limit (floor, SLO, budget): drawn dashed
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class PanelData:
    title: str
    unit: str
    kind: str  # "timeseries" | "stat"
    lines: list[Line] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    stacked: bool = False
    threshold: float | None = None
    offenders: Offenders | None = None

    @property
    def empty(self) -> bool:
        return not self.stats and not any(line.values for line in self.lines)

    def offender_text(self) -> str | None:
        """e.g. "tenants over budget: tenant-a, tenant-c" (None: the panel names nobody)."""
        if self.offenders is None or self.empty:
            return None
        names = offender_names(self.lines, self.offenders)
        return f"{self.offenders.phrase}: {', '.join(names) if names else 'none'}"


@dataclass
class ViewData:
    slug: str
    title: str
    description: str
    panels: list[PanelData]


def _last(line: Line) -> float | None:
    finite = [v for v in line.values if math.isfinite(v)]
    return finite[-1] if finite else None


def offender_names(lines: list[Line], rule: Offenders) -> list[str]:
    values = [line for line in lines if not line.threshold]
    limits = [line for line in lines if line.threshold]
    names: set[str] = set()
    for line in values:
        last = _last(line)
        if last is None:
            continue
        name = line.labels.get(rule.label, line.label)
        if rule.rule == "above":
            if last > rule.limit:
                names.add(name)
            continue
        own = [t for t in limits if t.labels.get(rule.label) == line.labels.get(rule.label)]
        limit_line = own[0] if own else (limits[0] if len(limits) == 1 else None)
        limit = _last(limit_line) if limit_line is not None else None
        if limit is None:
            continue
        if (rule.rule == "below_threshold" and last < limit) or (
            rule.rule == "above_threshold" and last > limit
        ):
            names.add(name if rule.label in line.labels else line.label)
    return sorted(names)


def format_value(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if unit == "percentunit":
        return f"{100 * value:.1f} %"
    if unit.startswith("suffix:"):
        return f"{value:,.4g} {unit.split(':', 1)[1].strip()}"
    suffix = {"massg": " g", "ms": " ms", "s": " s", "joule": " J", "reqps": " /s"}.get(unit, "")
    return f"{value:,.4g}{suffix}"


def _axis_label(unit: str) -> str:
    if unit.startswith("suffix:"):
        return unit.split(":", 1)[1].strip()
    return {
        "massg": "g CO2",
        "percentunit": "share",
        "ms": "ms",
        "s": "s",
        "joule": "J",
        "reqps": "per s",
    }.get(unit, "")


def draw_view(
    view: ViewData, path: Path, start_s: float | None = None, end_s: float | None = None
) -> Path:
    """One PNG per view; its time series share one UTC time axis (``start_s``..``end_s``, or
    the data's own span)."""
    panels = view.panels
    cols = 2
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(16, 4.2 * rows), squeeze=False)
    span = _span(panels, start_s, end_s)
    for ax, panel in zip(axes.flat, panels, strict=False):
        _draw_panel(ax, panel, span)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(view.title, fontsize=14)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")  # legends sit outside the axes
    plt.close(fig)
    return path


def _span(
    panels: list[PanelData], start_s: float | None, end_s: float | None
) -> tuple[datetime, datetime] | None:
    times = [t for p in panels for line in p.lines for t in line.timestamps_s if math.isfinite(t)]
    lo = start_s if start_s is not None else (min(times) if times else None)
    hi = end_s if end_s is not None else (max(times) if times else None)
    if lo is None or hi is None or hi <= lo:
        return None
    return datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi, UTC)


def _draw_panel(ax: Axes, panel: PanelData, span: tuple[datetime, datetime] | None) -> None:
    offenders = panel.offender_text()
    title = panel.title if offenders is None else f"{panel.title}\n{offenders}"
    ax.set_title(
        title, fontsize=9, color="black" if not offenders or "none" in offenders else "firebrick"
    )
    if panel.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    if panel.kind == "stat":
        text = "\n".join(f"{k}: {format_value(v, panel.unit)}" for k, v in panel.stats.items())
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=15, transform=ax.transAxes)
        ax.axis("off")
        return
    lines = sorted(
        (line for line in panel.lines if line.values), key=lambda line: (line.threshold, line.label)
    )
    shown, hidden = lines[:MAX_LINES], len(lines) - MAX_LINES
    colour_of: dict[tuple[tuple[str, str], ...], Any] = {}
    for i, line in enumerate(shown):
        xs = [datetime.fromtimestamp(t, UTC) for t in line.timestamps_s]
        sparse = len(xs) < SPARSE_POINTS or _has_gaps(line.timestamps_s)
        key = tuple(sorted(line.labels.items()))
        if line.threshold:  # a limit takes the colour of the series it limits (same labels)
            colour = colour_of.get(key, _LIMIT_COLOUR) if key else _LIMIT_COLOUR
        else:  # every value series its own colour; a limit matches the first with its labels
            colour = _PALETTE[i % len(_PALETTE)]
            if key:
                colour_of.setdefault(key, colour)
        ax.plot(
            xs,  # type: ignore[arg-type]
            line.values,
            label=line.label,
            color=colour,
            linewidth=1.8 if line.threshold else 1.2,
            linestyle="--" if line.threshold else "-",
            marker=None if line.threshold or not sparse else _MARKERS[i // 20 % len(_MARKERS)],
            markersize=3.5,
        )
    if panel.threshold is not None:
        ax.axhline(
            panel.threshold, color=_LIMIT_COLOUR, linestyle="--", linewidth=1.2, label="limit"
        )
    if span is not None:
        ax.set_xlim(span[0], span[1])  # type: ignore[arg-type]
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
    )
    ax.set_xlabel("time (UTC)", fontsize=8)
    ax.set_ylabel(_axis_label(panel.unit), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(
        fontsize=6.5,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),  # beside the axes, never over the data
        borderaxespad=0.0,
        frameon=False,
        title=f"+{hidden} more" if hidden > 0 else None,
        ncols=1 if len(shown) <= 16 else 2,
    )


def _has_gaps(timestamps_s: list[float]) -> bool:
    """Any step more than twice the median step: the line would bridge missing data."""
    if len(timestamps_s) < 3:
        return True
    steps = sorted(b - a for a, b in itertools.pairwise(timestamps_s))
    median = steps[len(steps) // 2]
    return median > 0 and steps[-1] > 2 * median
