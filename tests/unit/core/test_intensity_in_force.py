"""A request is priced with the reading in force at its event time, never a future one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from support.core_fixtures import ZONE_G_PER_KWH, config, context, stream

from streams.core import IntensityReading, IntensityView, get_policy
from streams.core.replay import priced_ahead

HOUR_MS = 3_600_000


def _view() -> IntensityView:
    return IntensityView.from_readings(
        IntensityReading("GB", v, ts_ms=t * HOUR_MS, source_offset=t)
        for t, v in [(10, 100.0), (11, 300.0), (12, 200.0)]
    )


def test_request_between_readings_uses_the_one_in_force() -> None:
    zi = _view().resolve("GB", 11 * HOUR_MS + 5, max_age_ms=2 * HOUR_MS, static_g_per_kwh=800.0)
    assert zi.intensity_g_per_kwh == 300.0
    assert zi.reading is not None and zi.reading.source_offset == 11
    assert zi.age_ms == 5 and not zi.stale


def test_live_request_after_all_readings_uses_the_latest() -> None:
    zi = _view().resolve(
        "GB", 12 * HOUR_MS + 60_000, max_age_ms=2 * HOUR_MS, static_g_per_kwh=800.0
    )
    assert zi.intensity_g_per_kwh == 200.0 and zi.age_ms == 60_000


def test_request_older_than_every_reading_has_none_in_force() -> None:
    """Only readings from the request's future: the zone has no reading in force, so it is
    stale and priced at its recent maximum (conservative), never with a future value."""
    zi = _view().resolve("GB", 9 * HOUR_MS, max_age_ms=2 * HOUR_MS, static_g_per_kwh=800.0)
    assert zi.stale and zi.reading is None and zi.age_ms is None
    assert zi.intensity_g_per_kwh == 300.0


def test_stale_rule_applies_to_the_reading_in_force() -> None:
    zi = _view().resolve("GB", 15 * HOUR_MS, max_age_ms=2 * HOUR_MS, static_g_per_kwh=800.0)
    assert zi.stale and zi.intensity_g_per_kwh == 300.0  # the zone's recent max


# --- through the routing context and the decision record ---------------------------------------
def _history_view() -> IntensityView:
    """Every zone: 100 g/kWh at hour 10, 300 at hour 11, 200 at hour 12 (offsets 10, 11, 12)."""
    return IntensityView.from_readings(
        IntensityReading(z, v, ts_ms=t * HOUR_MS, source="test", source_offset=t)
        for z in ZONE_G_PER_KWH
        for t, v in [(10, 100.0), (11, 300.0), (12, 200.0)]
    )


def _records(hours: list[float]) -> list[dict[str, Any]]:
    cfg = config(intensity_max_age_ms=2 * HOUR_MS)
    ctx = context(cfg, intensity=_history_view())
    # The same request (same tokens) at each hour, under its own id.
    reqs = [
        replace(stream(1, start_ms=int(h * HOUR_MS))[0], request_id=f"r{i}")
        for i, h in enumerate(hours)
    ]
    _, decisions = get_policy("gar-pd").decide_batch(ctx, {}, reqs)
    return [d.to_record() for d in decisions]


@pytest.mark.parametrize(
    ("hour", "reading_g", "offset"), [(10.5, 100.0, 10), (11.2, 300.0, 11), (12.5, 200.0, 12)]
)
def test_a_batch_straddling_readings_prices_each_request_with_its_own(
    hour: float, reading_g: float, offset: int
) -> None:
    """Readings on both sides of the requests: each is priced with the one in force at its
    event time, and its record names that reading, never a newer one."""
    recs = {r["ts_ms"]: r for r in _records([10.5, 11.2, 12.5])}
    rec = recs[int(hour * HOUR_MS)]
    intensity = rec["intensity"]
    assert intensity["reading_g_per_kwh"] == reading_g
    assert intensity["intensity_g_per_kwh"] == reading_g
    assert intensity["source_offset"] == offset
    assert intensity["ts_ms"] <= rec["ts_ms"]
    assert intensity["age_ms"] == rec["ts_ms"] - offset * HOUR_MS
    assert not intensity["stale"]
    assert priced_ahead(rec) is None


def test_co2_scales_with_the_reading_in_force() -> None:
    """The same request priced at hour 10.5 and 11.5 differs exactly by the readings' ratio."""
    early, late = _records([10.5, 11.5])
    for a, b in zip(early["candidates"]["co2_g"], late["candidates"]["co2_g"], strict=True):
        assert b == pytest.approx(a * 3.0, rel=1e-12)


def test_a_request_older_than_every_reading_is_priced_stale() -> None:
    (rec,) = _records([9.0])
    intensity = rec["intensity"]
    assert intensity["stale"] and intensity["ts_ms"] is None and intensity["age_ms"] is None
    assert intensity["intensity_g_per_kwh"] == 300.0  # the recent max, not a future reading


def test_live_requests_use_the_latest_reading() -> None:
    (rec,) = _records([12.9])
    assert rec["intensity"]["source_offset"] == 12


def test_the_audit_flags_a_decision_priced_with_a_future_reading() -> None:
    (rec,) = _records([11.5])
    assert priced_ahead(rec) is None
    forged = {**rec, "intensity": {**rec["intensity"], "ts_ms": rec["ts_ms"] + 1}}
    problem = priced_ahead(forged)
    assert problem is not None and "in its future" in problem
