"""The shared metrics store accepts influxdb-client (v2 API) writes and returns them via PromQL."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest
from influxdb_client import InfluxDBClient, Point
from influxdb_client.client.write_api import SYNCHRONOUS

from streams.config import Settings

pytestmark = pytest.mark.integration


def _get_json_lines(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]


def _export(base_url: str, selector: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"match[]": selector})
    return _get_json_lines(f"{base_url}/api/v1/export?{query}")


def test_influxdb_client_write_reads_back(dev_services: Any, unique_id: str) -> None:
    influx = Settings().influx
    # A few seconds in the past: instant queries evaluate at whole seconds.
    now_ms = int(time.time() * 1000) - 10_000
    points = [
        Point("infra_probe")
        .tag("run", unique_id)
        .tag("region", region)
        .field("co2_g", co2_g)
        .field("requests", n_requests)
        .time(now_ms - 1_000 * i, write_precision="ms")
        for i, (region, co2_g, n_requests) in enumerate(
            [("eu-north", 1.25, 3), ("us-east", 7.5, 4), ("eu-north", 2.5, 5)]
        )
    ]
    with InfluxDBClient(
        url=influx.url, token=influx.token.get_secret_value(), org=influx.org
    ) as client:
        client.write_api(write_options=SYNCHRONOUS).write(bucket=influx.bucket, record=points)

    selector = f'infra_probe_co2_g{{run="{unique_id}"}}'
    series = _poll_export(dev_services.metrics_url, selector, expected_points=3)
    by_region = {s["metric"]["region"]: sorted(s["values"]) for s in series}
    assert by_region == {"eu-north": [1.25, 2.5], "us-east": [7.5]}

    # PromQL over the same data (what the Grafana dashboards run).
    query = urllib.parse.urlencode({"query": f'sum(infra_probe_requests{{run="{unique_id}"}})'})
    (answer,) = _get_json_lines(f"{dev_services.metrics_url}/api/v1/query?{query}")
    assert answer["status"] == "success"
    # The latest sample of each series: eu-north's newest point (i=0) has 3, us-east has 4.
    assert float(answer["data"]["result"][0]["value"][1]) == 3 + 4


def _poll_export(base_url: str, selector: str, expected_points: int) -> list[dict[str, Any]]:
    """New points become searchable shortly after the write (in-memory buffers): poll."""
    urllib.request.urlopen(f"{base_url}/internal/force_flush", timeout=10).read()
    deadline = time.monotonic() + 20
    series = _export(base_url, selector)
    while sum(len(s["values"]) for s in series) < expected_points and time.monotonic() < deadline:
        time.sleep(0.2)
        series = _export(base_url, selector)
    return series
