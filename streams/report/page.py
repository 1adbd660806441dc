"""Write the figures plus one markdown page (and its HTML twin) that links them."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from streams.report.figures import ViewData, draw_view, format_value


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    figures: list[Path]


def _when(ts_s: float) -> str:
    """Dates in UTC, like every figure's time axis."""
    return datetime.fromtimestamp(ts_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def write_report(
    views: list[ViewData], out_dir: Path, *, source: str, start_s: float, end_s: float
) -> ReportFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = [draw_view(v, out_dir / f"{v.slug}.png", start_s, end_s) for v in views]
    md = [
        "# GAR operations report",
        "",
        f"Source: {source}. Range: {_when(start_s)} to {_when(end_s)}.",
        "",
    ]
    body = [
        "<!doctype html><meta charset='utf-8'><title>GAR operations report</title>",
        "<h1>GAR operations report</h1>",
        f"<p>Source: {html.escape(source)}. Range: {_when(start_s)} to {_when(end_s)}.</p>",
    ]
    for view, fig in zip(views, figures, strict=True):
        md += [f"## {view.title}", "", view.description, ""]
        body += [f"<h2>{html.escape(view.title)}</h2>", f"<p>{html.escape(view.description)}</p>"]
        stats = [
            (p.title, k, format_value(v, p.unit)) for p in view.panels for k, v in p.stats.items()
        ]
        if stats:
            md += ["| panel | series | value |", "|---|---|---|"]
            md += [f"| {t} | {k} | {v} |" for t, k, v in stats]
            md.append("")
            body.append("<table><tr><th>panel</th><th>series</th><th>value</th></tr>")
            body += [
                f"<tr><td>{html.escape(t)}</td><td>{html.escape(k)}</td><td>{v}</td></tr>"
                for t, k, v in stats
            ]
            body.append("</table>")
        named = [text for p in view.panels if (text := p.offender_text())]
        if named:
            md += [f"**{text}**" for text in named] + [""]
            body += [f"<p><b>{html.escape(text)}</b></p>" for text in named]
        empty = [p.title for p in view.panels if p.empty]
        if empty:
            md += ["No data for: " + ", ".join(empty) + ".", ""]
            body.append(f"<p>No data for: {html.escape(', '.join(empty))}.</p>")
        md += [f"![{view.title}]({fig.name})", ""]
        body.append(f"<img src='{fig.name}' alt='{html.escape(view.title)}' width='100%'>")
    md_path = out_dir / "report.md"
    html_path = out_dir / "report.html"
    md_path.write_text("\n".join(md), encoding="utf-8")
    html_path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return ReportFiles(md_path, html_path, figures)
