"""Raw bytes on the carbon-intensity topic -> ``IntensityReading | Rejected``.

The topic's contract is ``carbon-intensity.v1``; provider JSON is accepted too and mapped by
``streams.ingress.carbon`` (an Electricity Maps API object, a WattTime point or envelope), so
a user can pipe a provider's response straight onto the topic. ``source_offset`` is the Kafka
offset of the record, so a decision can point at the event it priced carbon with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.core.intensity import IntensityReading
from streams.ingress import _fields as f
from streams.ingress._errors import Bad
from streams.ingress._run import run
from streams.ingress.carbon import CarbonAdapterError, from_em_api, from_watttime
from streams.ingress.context import PERMISSIVE, IngressContext
from streams.ingress.rejected import Rejected, RejectReason, Source
from streams.ingress.schema_fields import allowed_keys, required_keys

SUPPORTED_VERSIONS = frozenset({1})
_REQUIRED = required_keys("carbon-intensity")
_KEYS = allowed_keys("carbon-intensity")
_SIGNALS = frozenset(("average", "marginal"))
_FACTORS = frozenset(("lifecycle", "direct"))


def parse_intensity(
    raw: bytes | None, ctx: IngressContext = PERMISSIVE, source: Source | None = None
) -> IntensityReading | Rejected:
    """One reading: a v1 event or a single provider point. Never raises."""
    offset = -1 if source is None else source.offset

    def build(d: dict[str, Any], c: IngressContext) -> IntensityReading:
        events = _events(d, c)
        if len(events) != 1:
            raise Bad(
                RejectReason.WRONG_TYPE,
                f"expected one reading, got {len(events)} (use parse_intensity_many)",
            )
        return _reading(events[0], c, offset)

    return run("carbon-intensity", raw, ctx.limits.max_intensity_bytes, build, ctx, source)


def parse_intensity_many(
    raw: bytes | None, ctx: IngressContext = PERMISSIVE, source: Source | None = None
) -> list[IntensityReading] | Rejected:
    """Any accepted shape incl. provider envelopes with many points. Never raises."""
    offset = -1 if source is None else source.offset

    def build(d: dict[str, Any], c: IngressContext) -> list[IntensityReading]:
        events = _events(d, c)
        if len(events) > c.limits.max_intensity_batch_points:
            raise Bad(
                RejectReason.LIST_TOO_LONG,
                f"{len(events)} points, limit is {c.limits.max_intensity_batch_points}",
            )
        return [_reading(e, c, offset) for e in events]

    return run("carbon-intensity", raw, ctx.limits.max_intensity_batch_bytes, build, ctx, source)


def _events(d: dict[str, Any], ctx: IngressContext) -> list[Mapping[str, Any]]:
    if "schema_version" in d:
        f.check_version(d, SUPPORTED_VERSIONS)
        f.check_keys(d, _KEYS, _REQUIRED)
        return [d]
    try:
        if "carbonIntensity" in d or "history" in d:
            return list(from_em_api(d))
        if "point_time" in d or "data" in d:
            return list(from_watttime(d))
    except CarbonAdapterError as exc:
        raise Bad(exc.reason, str(exc)) from None
    raise Bad(
        RejectReason.MISSING_SCHEMA_VERSION,
        "not a carbon-intensity.v1 event (no schema_version) nor a known provider shape",
        "schema_version",
    )


def event_fields(d: Mapping[str, Any], ctx: IngressContext) -> dict[str, Any]:
    """Validate a v1 event's fields (shared by the parser and the tests)."""
    lim = ctx.limits
    zone = f.known(
        f.name(d, "zone", lim.max_name_chars), ctx.zones, "zone", RejectReason.UNKNOWN_ZONE
    )
    return {
        "zone": zone,
        "intensity_g_per_kwh": f.number(d, "intensity_g_per_kwh", 0.0, lim.max_intensity_g_per_kwh),
        "ts_ms": f.integer(d, "ts_ms", lim.min_ts_ms, lim.max_ts_ms - 1),
        "updated_at_ms": f.integer(
            d, "updated_at_ms", lim.min_ts_ms, lim.max_ts_ms - 1, optional=True
        ),
        "source": f.name(d, "source", lim.max_name_chars),
        "signal_type": f.one_of(d, "signal_type", _SIGNALS, optional=False),
        "estimated": f.boolean(d, "estimated"),
        "estimation_method": f.text(d, "estimation_method", lim.max_text_chars),
        "emission_factor": f.one_of(d, "emission_factor", _FACTORS, optional=True),
    }


def _reading(d: Mapping[str, Any], ctx: IngressContext, offset: int) -> IntensityReading:
    v = event_fields(d, ctx)
    return IntensityReading(
        zone=v["zone"],
        intensity_g_per_kwh=v["intensity_g_per_kwh"],
        ts_ms=v["ts_ms"],
        source=v["source"],
        signal_type=v["signal_type"],
        estimated=v["estimated"],
        source_offset=offset,
    )
