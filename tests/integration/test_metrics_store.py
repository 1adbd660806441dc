"""The shared metrics store is a real InfluxDB: influxdb-client's v2 write API stores typed
points, and Flux (what the dashboards run) and InfluxQL both read them back."""

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
from streams.metrics.query import FluxClient

pytestmark = pytest.mark.integration


def test_influxdb_client_write_reads_back(dev_services: Any, unique_id: str) -> None:
    influx = Settings().influx
    now_ms = int(time.time() * 1000) - 10_000
    points = [
        Point("infra_probe")
        .tag("run", unique_id)
        .tag("region", region)
        .field("co2_g", co2_g)
        .field("requests", n_requests)
        .field("source", "probe")
        .time(now_ms - 1_000 * i, write_precision="ms")
        for i, (region, co2_g, n_requests) in enumerate(
            [("eu-north", 1.25, 3), ("us-east", 7.5, 4), ("eu-north", 2.5, 5)]
        )
    ]
    with InfluxDBClient(
        url=influx.url, token=influx.token.get_secret_value(), org=influx.org
    ) as client:
        client.write_api(write_options=SYNCHRONOUS).write(bucket=influx.bucket, record=points)

    flux = FluxClient(influx)
    series = flux.query(
        f'from(bucket: "{influx.bucket}") |> range(start: -1h)'
        f' |> filter(fn: (r) => r._measurement == "infra_probe" and r.run == "{unique_id}"'
        ' and r._field == "co2_g")'
    )
    by_region = {s.labels["region"]: sorted(s.values) for s in series}
    assert by_region == {"eu-north": [1.25, 2.5], "us-east": [7.5]}

    # InfluxQL on /query sees the same points, with the string and integer fields typed
    db = influx.bucket.split("/")[0]
    q = urllib.parse.urlencode(
        {
            "db": db,
            "q": f"SELECT sum(requests), last(source) FROM infra_probe WHERE run = '{unique_id}'",
        }
    )
    with urllib.request.urlopen(f"{influx.url}/query?{q}", timeout=10) as resp:
        answer = json.loads(resp.read())
    (row,) = answer["results"][0]["series"][0]["values"]
    assert row[1:] == [3 + 4 + 5, "probe"]
