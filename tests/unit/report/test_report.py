"""``gar report`` from the metrics store: the dashboards' views as PNGs plus a page."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.report.store import legend
from streams.report.timespec import parse_time_ms

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_time_forms() -> None:
    now = 1_700_000_000_000
    assert parse_time_ms("now", now) == now
    assert parse_time_ms("6h", now) == now - 6 * 3_600_000
    assert parse_time_ms("-90s", now) == now - 90_000
    assert parse_time_ms("2023-11-14T22:13:20Z", now) == 1_700_000_000_000
    assert parse_time_ms("1699999999000", now) == 1_699_999_999_000
    with pytest.raises(ValueError, match="bad time"):
        parse_time_ms("yesterday", now)


def test_legend_format() -> None:
    assert legend("{model} @ {region}", {"model": "m", "region": "r"}) == "m @ r"
    assert legend("", {"b": "2", "a": "1"}) == "a=1,b=2"


def test_report_from_decision_records_has_every_panel(tmp_path: Path) -> None:
    from support.decision_run import make_run

    from streams.metrics.decision_metrics import LargestBaseline
    from streams.report.decisions import views_from_decisions
    from streams.report.page import write_report

    run = make_run()
    views = views_from_decisions(run.records, step_ms=60_000, baseline=LargestBaseline(run.catalog))
    empty = [p.title for v in views for p in v.panels if p.empty]
    assert empty == []
    carbon = views[0]
    total = carbon.panels[0].stats["estimated"]
    largest = sum(r["co2_g"] for r in make_run(policy="always-largest").records)
    assert carbon.panels[2].stats["saved"] == pytest.approx(1 - total / largest)
    assert abs(total - sum(r["co2_g"] for r in run.records)) < 1e-9
    lam = next(p for p in views[1].panels if p.title.startswith("λ"))
    acme = next(line for line in lam.lines if line.label == "acme")
    assert (
        acme.values[-1]
        == [r for r in run.records if r["tenant"] == "acme"][-1]["duals_after"]["lambda"]
    )
    files = write_report(views, tmp_path, source="test", start_s=0, end_s=1)
    assert all(f.read_bytes()[:8] == PNG_MAGIC for f in files.figures)


def test_offenders_are_named_against_their_own_limit() -> None:
    from streams.report.figures import Line, PanelData
    from streams.report.views import Offenders

    def line(label: str, last: float, threshold: bool = False, **labels: str) -> Line:
        return Line(label, [0.0, 60.0], [0.0, last], threshold=threshold, labels=labels)

    floors = PanelData(
        "accuracy",
        "percentunit",
        "timeseries",
        lines=[
            line("gsm8k", 0.80, dataset="gsm8k"),
            line("mbpp", 0.60, dataset="mbpp"),
            line("gsm8k floor", 0.85, True, dataset="gsm8k"),
            line("mbpp floor", 0.50, True, dataset="mbpp"),
        ],
        offenders=Offenders("datasets under their floor", "dataset", "below_threshold"),
    )
    assert floors.offender_text() == "datasets under their floor: gsm8k"
    slo = PanelData(
        "p95",
        "ms",
        "timeseries",
        lines=[
            line("a @ x", 900.0, model="a"),
            line("b @ y", 300.0, model="b"),
            line("SLO", 500.0, True),
        ],
        offenders=Offenders("candidates over the SLO", "model", "above_threshold"),
    )
    assert slo.offender_text() == "candidates over the SLO: a"  # one SLO limits every series
    budget = PanelData(
        "used",
        "percentunit",
        "timeseries",
        lines=[
            line("t1", 1.2, tenant="t1"),
            line("t2", 0.3, tenant="t2"),
            line("t3", 1.01, tenant="t3"),
        ],
        offenders=Offenders("tenants over budget", "tenant", "above", 1.0),
    )
    assert budget.offender_text() == "tenants over budget: t1, t3"
    budget.lines = [line("t2", 0.3, tenant="t2")]
    assert budget.offender_text() == "tenants over budget: none"
    assert (
        PanelData("empty", "short", "timeseries", offenders=budget.offenders).offender_text()
        is None
    )


def test_figures_mark_sparse_series_and_keep_many_series_apart(tmp_path: Path) -> None:
    from streams.report.figures import _PALETTE, Line, PanelData, ViewData, _has_gaps, draw_view

    assert len({tuple(c) for c in _PALETTE}) == 60
    assert len({tuple(c) for c in _PALETTE[:10]}) == 10
    assert _has_gaps([0, 10, 20, 100, 110]) and not _has_gaps([0, 10, 20, 30])
    lines = [Line(f"s{i}", [0.0, 60.0, 120.0], [i, i + 1.0, i]) for i in range(25)]
    view = ViewData("v", "V", "", [PanelData("many", "short", "timeseries", lines=lines)])
    assert draw_view(view, tmp_path / "v.png", 0.0, 180.0).read_bytes()[:8] == PNG_MAGIC
