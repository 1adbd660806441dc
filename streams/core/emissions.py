"""Realised emissions of a served request: measured energy x the zone's intensity x PUE.

For metrics only: the budget window is charged with decision-time estimates, so that the audit
chain re-derives every decision from its record.
"""

from __future__ import annotations

from streams.core.catalog import Catalog
from streams.core.context import J_PER_KWH
from streams.core.intensity import IntensityView
from streams.core.policy_config import PolicyConfig


def realised_co2_g(
    catalog: Catalog,
    intensity: IntensityView,
    config: PolicyConfig,
    region: str,
    ts_ms: int,
    energy_j: float | None,
) -> float | None:
    """CO2 (g) of ``energy_j`` used in ``region`` at event time ``ts_ms``, priced with the
    reading in force then (stale rule of ``config``); None without energy or for an unknown
    region."""
    ri = catalog.region_index.get(region)
    if energy_j is None or ri is None:
        return None
    spec = catalog.regions[ri]
    zi = intensity.resolve(
        spec.zone, ts_ms, config.intensity_max_age_ms, config.stale_intensity_g_per_kwh
    )
    return energy_j / J_PER_KWH * zi.intensity_g_per_kwh * spec.pue
