"""A request is priced with the reading in force at its event time, never a future one."""

from __future__ import annotations

from streams.core import IntensityReading, IntensityView

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
    zi = _view().resolve("GB", 12 * HOUR_MS + 60_000, max_age_ms=2 * HOUR_MS,
                         static_g_per_kwh=800.0)
    assert zi.intensity_g_per_kwh == 200.0 and zi.age_ms == 60_000


def test_request_older_than_every_reading_uses_the_oldest() -> None:
    zi = _view().resolve("GB", 9 * HOUR_MS, max_age_ms=2 * HOUR_MS, static_g_per_kwh=800.0)
    assert zi.intensity_g_per_kwh == 100.0
    assert zi.age_ms == 0 and not zi.stale


def test_stale_rule_applies_to_the_reading_in_force() -> None:
    zi = _view().resolve("GB", 15 * HOUR_MS, max_age_ms=2 * HOUR_MS, static_g_per_kwh=800.0)
    assert zi.stale and zi.intensity_g_per_kwh == 300.0  # the zone's recent max
