"""``gar report`` from the metrics store: the dashboards' views as PNGs plus a page."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.cli import ops_cli
from support.sample_run import write_sample_run
from typer.testing import CliRunner

from streams.config import InfluxSettings, Settings
from streams.metrics import build_metrics
from streams.metrics.query import FluxClient
from streams.report.views import DASHBOARDS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration
def test_report_from_store_renders_every_view(
    flux: FluxClient,
    influx_settings: InfluxSettings,
    run_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics = build_metrics(influx_settings)
    write_sample_run(metrics, int(time.time() * 1000))
    metrics.close()
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
            "--tag",
            f"worker={run_id}",
        ],
    )
    assert result.exit_code == 0, result.output
    total = sum(len(d.panels) for d in DASHBOARDS)
    assert f"{total}/{total} panels have data" in result.output
    # the offenders are named, not left to the reader
    assert "tenants over budget: globex" in result.output
    assert "zones stale: US-MIDA-PJM" in result.output
    for d in DASHBOARDS:
        assert (out / f"{d.uid}.png").read_bytes()[:8] == PNG_MAGIC
    page = (out / "report.md").read_text()
    assert all(d.title in page for d in DASHBOARDS) and "No data for" not in page
    assert "**tenants over budget: globex**" in page
    assert (out / "report.html").read_text().count("<img") == len(DASHBOARDS)


@pytest.mark.integration
def test_report_from_the_decisions_topic(
    settings: Settings, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.decision_run import make_run, publish

    run = make_run(batches=3, per_batch=10)
    publish(settings, settings.topics.name(settings.topics.decisions), run.records)
    monkeypatch.setenv("GAR_TOPICS__PREFIX", topic_prefix)
    result = CliRunner().invoke(
        ops_cli(), ["report", "--source", "decisions", "--offsets", ":", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "panels have data" in result.output
    assert "Source: topic " + topic_prefix in (tmp_path / "report.md").read_text()
