"""The real writer against the real InfluxDB: every measurement of the catalogue reads back
with its tags and typed fields (strings, booleans, integers, floats)."""

from __future__ import annotations

import time

import pytest
from support.sample_run import CANDIDATES, TENANTS, TICKS, write_sample_run

from streams.config import InfluxSettings
from streams.metrics import ALL_MEASUREMENTS, build_metrics
from streams.metrics.query import FluxClient

pytestmark = pytest.mark.integration


def _flux(client: FluxClient, run_id: str, body: str) -> str:
    return (
        f'from(bucket: "{client.bucket}") |> range(start: -1h)'
        f' |> filter(fn: (r) => r.worker == "{run_id}") {body}'
    )


def test_every_measurement_reads_back(
    flux: FluxClient, influx_settings: InfluxSettings, run_id: str
) -> None:
    metrics = build_metrics(influx_settings)
    end_ms = int(time.time() * 1000)
    write_sample_run(metrics, end_ms)
    metrics.close()
    stats = metrics.writer.stats() if metrics.writer else None
    assert stats is not None and stats.dropped_points == 0

    names = {
        str(r.values["_value"])
        for t in flux.tables(
            _flux(
                flux,
                run_id,
                '|> keep(columns: ["_measurement"]) |> group() |> distinct(column: "_measurement")',
            )
        )
        for r in t.records
    }
    assert names == set(ALL_MEASUREMENTS), set(ALL_MEASUREMENTS) ^ names

    # counts are per-batch deltas: the sum over the run equals what was routed (an integer)
    total = flux.tables(
        _flux(
            flux,
            run_id,
            '|> filter(fn: (r) => r._measurement == "gar_decisions" and '
            'r._field == "count") |> group() |> sum()',
        )
    )
    expected = sum(
        5 + tick + 3 * c + t
        for tick in range(TICKS)
        for t in range(len(TENANTS))
        for c in range(len(CANDIDATES))
    )
    assert total[0].records[0].values["_value"] == expected
    # one series per (tenant, model, region, reason, policy)
    series = flux.query(
        _flux(
            flux,
            run_id,
            '|> filter(fn: (r) => r._measurement == "gar_decisions" and '
            'r._field == "count") |> last()',
        )
    )
    assert len(series) == len(TENANTS) * len(CANDIDATES)
    # mu is per tenant and dataset, lambda and nu per tenant
    mu = flux.query(
        _flux(
            flux,
            run_id,
            '|> filter(fn: (r) => r._measurement == "gar_duals" and '
            'r._field == "mu" and r.tenant == "acme" and r.dataset == "gsm8k") |> last()',
        )
    )
    assert mu[0].values == pytest.approx([0.1 * (TICKS - 1)])
    lam = flux.query(
        _flux(
            flux,
            run_id,
            '|> filter(fn: (r) => r._measurement == "gar_duals" and '
            'r._field == "lambda") |> last()',
        )
    )
    assert {s.labels["tenant"] for s in lam} == set(TENANTS)
    assert all("dataset" not in s.labels for s in lam)
    # descriptive strings are string fields, flags booleans, never tags
    zone = flux.tables(
        _flux(
            flux,
            run_id,
            '|> filter(fn: (r) => r._measurement == "gar_intensity" and '
            'r.zone == "US-MIDA-PJM") |> last()',
        )
    )
    fields = {r.values["_field"]: r.values["_value"] for t in zone for r in t.records}
    assert fields["source"] == "electricitymaps" and fields["signal_type"] == "average"
    assert fields["stale"] is True and fields["estimated"] is True
    assert {"zone", "worker"} >= {
        k
        for t in zone
        for k in t.records[0].values
        if not k.startswith("_") and k not in ("result", "table")
    }
