"""Realised CO2 of a served request, and the per-zone history the intensity table keeps."""

from __future__ import annotations

import pytest
from support.core_fixtures import small_catalog

from streams.core.emissions import realised_co2_g
from streams.core.intensity import (
    MAX_HISTORY_READINGS,
    IntensityReading,
    IntensityView,
    trim_history,
)
from streams.core.policy_config import PolicyConfig

T0_MS = 1_672_531_200_000
HOUR_MS = 3_600_000


def test_realised_co2_is_energy_times_the_intensity_in_force_times_pue() -> None:
    cat = small_catalog()
    region = cat.regions[0]
    view = IntensityView.from_readings(
        [
            IntensityReading(region.zone, 100.0, T0_MS),
            IntensityReading(region.zone, 300.0, T0_MS + HOUR_MS),
        ]
    )
    cfg = PolicyConfig(intensity_max_age_ms=2 * HOUR_MS)
    at_first_hour = realised_co2_g(cat, view, cfg, region.name, T0_MS + 60_000, 3.6e6)
    assert at_first_hour == pytest.approx(100.0 * region.pue)  # 1 kWh at 100 g/kWh
    later = realised_co2_g(cat, view, cfg, region.name, T0_MS + HOUR_MS + 1, 3.6e6)
    assert later == pytest.approx(300.0 * region.pue)
    assert realised_co2_g(cat, view, cfg, region.name, T0_MS, None) is None
    assert realised_co2_g(cat, view, cfg, "no-such-region", T0_MS, 1.0) is None


def test_trim_history_keeps_a_day_of_the_newest_readings_in_time_order() -> None:
    old = IntensityReading("GB", 500.0, T0_MS)
    recent = [IntensityReading("GB", float(i), T0_MS + 2 * HOUR_MS * 24 - i) for i in range(3)]
    assert trim_history([*recent, old]) == tuple(sorted(recent, key=lambda r: r.ts_ms))
    many = [IntensityReading("GB", float(i), T0_MS + i * 60_000) for i in range(200)]
    kept = trim_history(reversed(many))
    assert len(kept) == MAX_HISTORY_READINGS and kept[-1] == many[-1]
    assert trim_history([]) == ()
