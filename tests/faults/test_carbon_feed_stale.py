"""The carbon feed stops (end to end, real worker): once a zone's newest reading is older than
``intensity_max_age_ms`` of event time, decisions are marked ``intensity_stale`` and priced with
the documented conservative fallback (the zone's highest retained reading, or the static
``stale_intensity_g_per_kwh`` for a zone never seen); the ``stale`` field of ``gar_intensity``
is raised; fresh data clears both."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.audit import audited_decisions

from faults.helpers import (
    T0_MS,
    alive,
    create_topics,
    influx_env,
    layout,
    produce,
    publish_intensity,
    publish_policy,
    read_until,
    request,
    start_worker,
)
from streams.config import InfluxSettings
from streams.core.intensity import IntensityReading
from streams.core.policy_config import PolicyConfig
from streams.metrics.query import FluxClient

pytestmark = [pytest.mark.integration, pytest.mark.faults]

MIN = 60_000
MAX_AGE_MS = 30 * MIN
STATIC = 777.0
ZONES = ("GB", "US-MIDA-PJM")
PER_PHASE = 24


def _phase(settings: Any, name: str, ts_ms: int, seen: int) -> list[dict[str, Any]]:
    lay = layout(settings)
    items = [
        (f"t{i % 4}".encode(), request(i, f"t{i % 4}", ts_ms + i, prefix=name))
        for i in range(PER_PHASE)
    ]
    produce(settings, lay.requests, items)
    r = read_until(
        settings, [lay.decisions], lambda r: len(r.decided_ids) >= seen + PER_PHASE, 60.0, lay
    )
    out = [orjson.loads(m.value) for m in r.records[lay.decisions]]
    return [d for d in out if d["request_id"].startswith(name + "-")]


def _chosen_zone_intensity(d: dict[str, Any]) -> dict[str, tuple[float, bool]]:
    zi = d["intensity"]
    return {zi["zone"]: (float(zi["intensity_g_per_kwh"]), bool(zi["stale"]))}


def _stale_samples(influx: InfluxSettings, tag: str) -> list[tuple[float, float]]:
    """Every zone's ``stale`` flag (1.0 = stale) written by the worker, oldest first."""
    series = FluxClient(influx).query(
        f'from(bucket: "{influx.bucket}") |> range(start: -1h) |> filter(fn: (r) => '
        f'r._measurement == "gar_intensity" and r._field == "stale" and r.worker == "{tag}")'
    )
    return sorted((t, v) for s in series for t, v in zip(s.timestamps_s, s.values, strict=True))


def _wait_stale_samples(
    influx: InfluxSettings, tag: str, want: float, timeout_s: float = 20.0
) -> list[tuple[float, float]]:
    """Poll until the newest stale sample equals ``want``: the worker flushes metrics about
    once a second."""
    deadline = time.monotonic() + timeout_s
    samples = _stale_samples(influx, tag)
    while not (samples and samples[-1][1] == want) and time.monotonic() < deadline:
        time.sleep(0.5)
        samples = _stale_samples(influx, tag)
    return samples


def test_stale_intensity_falls_back_conservatively_and_recovers(
    settings_factory: Any, catalog_path: Path, tmp_path: Path, unique_id: str
) -> None:
    settings = settings_factory(
        topics={"partitions": 2}, worker={"catalog_path": str(catalog_path), "batch_max": 50}
    )
    create_topics(settings)
    tag = f"faults-{unique_id}"
    worker = start_worker(settings, tmp_path / "w.log", influx_env(settings.influx.url, tag))
    phases: dict[str, list[dict[str, Any]]] = {}
    try:
        publish_policy(
            settings,
            PolicyConfig(
                version="stale-v1",
                intensity_max_age_ms=MAX_AGE_MS,
                stale_intensity_g_per_kwh=STATIC,
                adaptive_floor_alpha=None,
            ),
        )
        # 0. No reading ever: every zone at the static fallback.
        phases["never"] = _phase(settings, "never", T0_MS, 0)
        # 1. Fresh readings (GB had a dirtier hour before the latest one).
        publish_intensity(
            settings,
            [
                IntensityReading("GB", 300.0, T0_MS - 60 * MIN, "test"),
                IntensityReading("GB", 100.0, T0_MS, "test"),
                IntensityReading("US-MIDA-PJM", 400.0, T0_MS, "test"),
            ],
        )
        phases["fresh"] = _phase(settings, "fresh", T0_MS + 10 * MIN, PER_PHASE)
        # 2. The feed stops: 45 min of event time later, no new reading.
        phases["stale"] = _phase(settings, "stale", T0_MS + 45 * MIN, 2 * PER_PHASE)
        stale_metric = _wait_stale_samples(settings.influx, tag, 1.0)
        # 3. The feed comes back.
        publish_intensity(
            settings,
            [
                IntensityReading("GB", 150.0, T0_MS + 50 * MIN, "test"),
                IntensityReading("US-MIDA-PJM", 420.0, T0_MS + 50 * MIN, "test"),
            ],
        )
        phases["back"] = _phase(settings, "back", T0_MS + 55 * MIN, 3 * PER_PHASE)
        final_metric = _wait_stale_samples(settings.influx, tag, 0.0)
        assert alive(worker), worker.log()[-3000:]
    finally:
        worker.stop()
    assert {k: len(v) for k, v in phases.items()} == dict.fromkeys(phases, PER_PHASE)
    # What each decision was priced with, rebuilt from its context record by the audit.
    full = {d["request_id"]: d for d in audited_decisions(settings)}
    phases = {name: [full[d["request_id"]] for d in ds] for name, ds in phases.items()}
    expect = {
        "never": ({"GB": STATIC, "US-MIDA-PJM": STATIC}, True),
        "fresh": ({"GB": 100.0, "US-MIDA-PJM": 400.0}, False),
        "stale": ({"GB": 300.0, "US-MIDA-PJM": 400.0}, True),  # the zones' recent maximum
        "back": ({"GB": 150.0, "US-MIDA-PJM": 420.0}, False),
    }
    for name, decisions in phases.items():
        prices, stale = expect[name]
        for d in decisions:
            assert d["intensity_stale"] is stale, (name, d["intensity"])
            for zone, (used, flag) in _chosen_zone_intensity(d).items():
                assert (used, flag) == (prices[zone], stale), (name, d["intensity"])
        if stale:
            # Conservative: never cheaper than the last real reading of the chosen zone.
            assert all(
                d["intensity"]["intensity_g_per_kwh"]
                >= (d["intensity"].get("reading_g_per_kwh") or 0.0)
                for d in decisions
            )
    # The metric: raised while stale, cleared once fresh data is back.
    assert any(v == 1.0 for _, v in stale_metric), stale_metric
    assert final_metric and final_metric[-1][1] == 0.0, final_metric[-5:]
    print(
        f"\ncarbon feed: decisions per phase={ {k: len(v) for k, v in phases.items()} } "
        f"stale_metric_points={len(final_metric)} "
        f"raised={sum(1 for _, v in final_metric if v == 1.0)}"
    )
