"""``gar report`` and ``gar audit``: the SRE side (streams/report, streams/audit)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from streams.config import load_settings
from streams.report.timespec import parse_time_ms

_OUT = Path("gar-report")


def _labels(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--label wants key=value, got {p!r}")
        out[key] = value
    return out


def report(
    out: Annotated[Path, typer.Option("--out", help="Directory for PNGs + page.")] = _OUT,
    source: Annotated[
        str, typer.Option("--source", help="metrics (the store) or decisions (the topic).")
    ] = "metrics",
    since: Annotated[
        str, typer.Option("--since", help="Start: now, 6h (ago), ISO-8601, epoch ms.")
    ] = "6h",
    until: Annotated[str, typer.Option("--until", help="End, same forms.")] = "now",
    step_s: Annotated[
        float, typer.Option("--step", help="Seconds per point (0: about 120 points).")
    ] = 0.0,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="Only series with this label, e.g. worker=host-1."),
    ] = None,
    offsets: Annotated[
        str, typer.Option("--offsets", help="decisions source: offset range FROM:TO.")
    ] = "",
) -> None:
    """Render the dashboards' views as PNG plots plus report.md / report.html."""
    settings = load_settings()
    now_ms = int(time.time() * 1000)
    try:
        start_ms, end_ms = parse_time_ms(since, now_ms), parse_time_ms(until, now_ms)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if end_ms <= start_ms:
        raise typer.BadParameter("--until must be after --since")
    step = step_s or max((end_ms - start_ms) / 1000 / 120, 1.0)
    if source == "metrics":
        from streams.metrics.query import PromClient
        from streams.report.store import views_from_store

        prom = PromClient(settings.influx.url, extra_labels=_labels(label or []))
        if not prom.healthy():
            typer.echo(f"error: metrics store not reachable at {settings.influx.url}", err=True)
            raise typer.Exit(2)
        views = views_from_store(prom, start_ms / 1000, end_ms / 1000, step)
        where = f"metrics store {settings.influx.url}"
    elif source == "decisions":
        from streams.audit.reader import ReadRange, read_decisions
        from streams.report.decisions import views_from_decisions

        rng = ReadRange.parse(offsets) if offsets else ReadRange(start_ms=start_ms, end_ms=end_ms)
        rows = read_decisions(settings, rng, progress=True)
        views = views_from_decisions([r.record for r in rows if r.record], step * 1000)
        if rows:
            start_ms = min(r.timestamp_ms for r in rows)
            end_ms = max(r.timestamp_ms for r in rows) + 1
        where = f"topic {settings.topics.name(settings.topics.decisions)}"
    else:
        raise typer.BadParameter("--source is metrics or decisions")
    from streams.report.page import write_report

    files = write_report(views, out, source=where, start_s=start_ms / 1000, end_s=end_ms / 1000)
    empty = sum(p.empty for v in views for p in v.panels)
    total = sum(len(v.panels) for v in views)
    typer.echo(
        f"wrote {files.markdown} and {files.html} ({len(files.figures)} figures); "
        f"{total - empty}/{total} panels have data"
    )


def register(app: typer.Typer) -> None:
    app.command("report")(report)
