"""``gar report`` from the metrics store: the dashboards' views as PNGs plus a page."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.config import InfluxSettings, Settings
from streams.metrics import build_metrics
from streams.metrics.query import PromClient
from streams.report.store import legend
from streams.report.timespec import parse_time_ms
from streams.report.views import DASHBOARDS

from .conftest import ops_cli
from .sample_run import write_sample_run

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
    assert legend("{{model}} @ {{region}}", {"model": "m", "region": "r"}) == "m @ r"
    assert legend("", {"b": "2", "a": "1"}) == "a=1,b=2"


@pytest.mark.integration
def test_report_from_store_renders_every_view(
    prom: PromClient,
    influx_settings: InfluxSettings,
    run_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics = build_metrics(influx_settings)
    write_sample_run(metrics, int(time.time() * 1000))
    metrics.close()
    prom.force_flush()
    monkeypatch.setenv("GAR_INFLUX__URL", influx_settings.url)
    out = tmp_path / "rep"
    result = CliRunner().invoke(
        ops_cli(),
        [
            "report",
            "--out",
            str(out),
            "--since",
            "20m",
            "--step",
            "60",
            "--label",
            f"worker={run_id}",
        ],
    )
    assert result.exit_code == 0, result.output
    total = sum(len(d.panels) for d in DASHBOARDS)
    assert f"{total}/{total} panels have data" in result.output
    for d in DASHBOARDS:
        assert (out / f"{d.uid}.png").read_bytes()[:8] == PNG_MAGIC
    page = (out / "report.md").read_text()
    assert all(d.title in page for d in DASHBOARDS) and "No data for" not in page
    assert (out / "report.html").read_text().count("<img") == len(DASHBOARDS)


def test_report_from_decision_records_has_every_panel(tmp_path: Path) -> None:
    from streams.metrics.records import LargestBaseline
    from streams.report.decisions import views_from_decisions
    from streams.report.page import write_report

    from .decision_run import make_run

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


@pytest.mark.integration
def test_report_from_the_decisions_topic(
    settings: Settings, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .decision_run import make_run, publish

    run = make_run(batches=3, per_batch=10)
    publish(settings, settings.topics.name(settings.topics.decisions), run.records)
    monkeypatch.setenv("GAR_TOPICS__PREFIX", topic_prefix)
    result = CliRunner().invoke(
        ops_cli(), ["report", "--source", "decisions", "--offsets", ":", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "panels have data" in result.output
    assert "Source: topic " + topic_prefix in (tmp_path / "report.md").read_text()
