"""Where the zones and the clients are: coordinates, PUE and the RTT model.

These are scenario assumptions (docs/evaluation.md), not measurements:

* Each Electricity Maps zone is placed at a typical cloud-region site inside it.
* PUE: 1.10-1.20 in cool and temperate climates (what hyperscalers publish for such sites),
  1.25-1.45 in hot or humid ones (more cooling); the industry-wide average is ~1.58
  (Uptime Institute 2023), so these are efficient, modern sites.
* RTT ~= 5 ms + great-circle distance x 1.5 (route inflation) x 2 (round trip) / 200 km/ms
  (light in fibre), i.e. 5 ms + 0.015 ms/km; e.g. Ashburn-Frankfurt ~102 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Site:
    name: str
    lat: float
    lon: float
    utc_offset_h: float
    pue: float = 1.2


ZONE_SITES: dict[str, Site] = {
    s.name: s
    for s in (
        Site("AU-NSW", -33.87, 151.21, 10, 1.25),
        Site("AU-VIC", -37.81, 144.96, 10, 1.20),
        Site("BR-SP", -23.55, -46.63, -3, 1.30),
        Site("CA-ON", 43.65, -79.38, -5, 1.12),
        Site("CL-SIC", -33.45, -70.67, -4, 1.20),
        Site("DE-LU", 50.11, 8.68, 1, 1.15),
        Site("GB", 51.51, -0.13, 0, 1.15),
        Site("IN-WE", 19.08, 72.88, 5.5, 1.45),
        Site("JP-TK", 35.68, 139.69, 9, 1.25),
        Site("KR", 37.57, 126.98, 9, 1.25),
        Site("SG", 1.35, 103.82, 8, 1.35),
        Site("US-CAL-CISO", 37.34, -121.89, -8, 1.20),
        Site("US-MIDA-PJM", 39.04, -77.49, -5, 1.18),
        Site("US-NY-NYIS", 40.71, -74.01, -5, 1.18),
        Site("US-TEX-ERCO", 32.78, -96.80, -6, 1.25),
        Site("ZA", -26.20, 28.05, 2, 1.30),
    )
}

CLIENT_SITES: dict[str, Site] = {
    s.name: s
    for s in (
        Site("us-east", 38.91, -77.04, -5),
        Site("us-west", 37.77, -122.42, -8),
        Site("europe", 50.11, 8.68, 1),
        Site("asia", 1.35, 103.82, 8),
    )
}

# Share of traffic from each client region and the zone it would use without routing.
DEFAULT_CLIENT_WEIGHTS: dict[str, float] = {
    "us-east": 0.35,
    "us-west": 0.20,
    "europe": 0.30,
    "asia": 0.15,
}

BASE_RTT_MS = 5.0
RTT_MS_PER_KM = 0.015


def distance_km(a: Site, b: Site) -> float:
    """Great-circle (haversine) distance."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


def rtt_ms(client: Site, zone: Site) -> float:
    return round(BASE_RTT_MS + RTT_MS_PER_KM * distance_km(client, zone), 1)


def zone_site(zone: str) -> Site:
    try:
        return ZONE_SITES[zone]
    except KeyError:
        raise KeyError(
            f"no site (location, PUE) known for zone {zone!r}; known: {sorted(ZONE_SITES)}"
        ) from None


def home_zone(client: str, zones: list[str]) -> str:
    """The deployed zone nearest to the client (the home-region baseline)."""
    site = CLIENT_SITES[client]
    return min(zones, key=lambda z: (rtt_ms(site, zone_site(z)), z))
