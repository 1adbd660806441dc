"""Carbon-intensity adapters: provider shapes -> one ``carbon-intensity.v1`` event.

Sources:

- Electricity Maps data-portal CSV exports (``Datetime (UTC), ..., Carbon Intensity gCO₂eq/kWh
  (direct), Carbon Intensity gCO₂eq/kWh (LCA), ..., Data Estimated, Data Estimation Method``):
  hourly *average* intensity, lifecycle (LCA) by default as in the Electricity Maps API.
- Electricity Maps API JSON (``carbon-intensity/latest``: ``zone, carbonIntensity, datetime,
  updatedAt, isEstimated, estimationMethod, emissionFactorType``; ``/history`` wraps a list of
  those in ``history``): average intensity.
- WattTime-style JSON: a v3 envelope (``meta.signal_type/region/units``, ``data[].point_time/
  value``), a flat point (``point_time, value, signal_type, region|ba, units``) or a v2 list of
  points. ``co2_moer`` is *marginal*, ``co2_aoer`` average; ``lbs_co2_per_mwh`` is converted to
  g/kWh (x 0.45359237). Points after ``meta.generated_at`` are forecasts (estimated).

The adapters raise ``CarbonAdapterError`` (with a dead-letter reason) on bad input; the topic
parser ``parse_intensity`` wraps them and never raises.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypedDict

from streams.data._csv import read_header, read_rows
from streams.data.carbon import zone_of
from streams.data.errors import DataFileError
from streams.ingress._errors import Bad
from streams.ingress.rejected import RejectReason

EmissionFactor = Literal["lifecycle", "direct"]

LBS_PER_MWH_TO_G_PER_KWH = 0.45359237  # 1 lb = 453.59237 g; 1 MWh = 1000 kWh
_UNIT_FACTORS = {
    "lbs_co2_per_mwh": LBS_PER_MWH_TO_G_PER_KWH,
    "lbs/mwh": LBS_PER_MWH_TO_G_PER_KWH,
    "kg_co2_per_mwh": 1.0,
    "g_co2_per_kwh": 1.0,
    "gco2/kwh": 1.0,
}
_WATTTIME_SIGNALS = {"co2_moer": "marginal", "moer": "marginal", "co2_aoer": "average"}
_MAX_TIMESTAMP_CHARS = 40

SOURCE_EM_CSV = "electricitymaps-csv"
SOURCE_EM_API = "electricitymaps-api"
SOURCE_WATTTIME = "watttime"


class IntensityEvent(TypedDict, total=False):
    """The ``carbon-intensity.v1`` wire record."""

    schema_version: int
    zone: str
    intensity_g_per_kwh: float
    ts_ms: int
    updated_at_ms: int | None
    source: str
    signal_type: str
    estimated: bool
    estimation_method: str | None
    emission_factor: str | None


class CarbonAdapterError(ValueError):
    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _event(
    zone: str,
    intensity_g_per_kwh: float,
    ts_ms: int,
    source: str,
    signal_type: str,
    estimated: bool,
    *,
    updated_at_ms: int | None = None,
    estimation_method: str | None = None,
    emission_factor: str | None = None,
) -> IntensityEvent:
    return {
        "schema_version": 1,
        "zone": zone,
        "intensity_g_per_kwh": intensity_g_per_kwh,
        "ts_ms": ts_ms,
        "updated_at_ms": updated_at_ms,
        "source": source,
        "signal_type": signal_type,
        "estimated": estimated,
        "estimation_method": estimation_method,
        "emission_factor": emission_factor,
    }


# --- timestamps and numbers ----------------------------------------------------------------------


def parse_timestamp_ms(value: Any, field: str) -> int:
    """ISO-8601 (``Z``, offsets, fractions, or ``YYYY-MM-DD HH:MM:SS`` as UTC) -> epoch ms."""
    if type(value) is not str or not value or len(value) > _MAX_TIMESTAMP_CHARS:
        raise Bad(RejectReason.BAD_FORMAT, f"{field} must be an ISO-8601 timestamp string", field)
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Bad(RejectReason.BAD_FORMAT, f"{field} is not ISO-8601: {value!r}", field) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


def _optional_timestamp_ms(value: Any, field: str) -> int | None:
    return None if value is None else parse_timestamp_ms(value, field)


def _finite(value: Any, field: str) -> float:
    if type(value) is bool or not isinstance(value, int | float):
        raise Bad(RejectReason.WRONG_TYPE, f"{field} must be a number", field)
    v = float(value)
    if not math.isfinite(v):
        raise Bad(RejectReason.NON_FINITE, f"{field} must be finite", field)
    return v


def _text(value: Any, field: str, limit: int = 64) -> str:
    if type(value) is not str or not value:
        raise Bad(RejectReason.WRONG_TYPE, f"{field} must be a non-empty string", field)
    if len(value) > limit:
        raise Bad(RejectReason.STRING_TOO_LONG, f"{field} is longer than {limit} chars", field)
    return value


# --- Electricity Maps CSV ------------------------------------------------------------------------


def em_csv_columns(header: list[str], emission_factor: EmissionFactor) -> str:
    """The intensity column for ``emission_factor`` in an Electricity Maps export header."""
    tag = "(lca)" if emission_factor == "lifecycle" else "(direct)"
    for name in header:
        low = name.strip().lower()
        if low.startswith("carbon intensity") and low.endswith(tag):
            return name
    raise CarbonAdapterError(
        RejectReason.MISSING_FIELD, f"no 'Carbon Intensity ... {tag}' column in header {header}"
    )


def from_em_csv_row(
    row: Mapping[str, str], zone: str, column: str, emission_factor: EmissionFactor
) -> IntensityEvent:
    """One export row -> event. ``zone`` is the caller's zone key (the file name stem)."""
    try:
        estimated_text = row.get("Data Estimated", "").strip().lower()
        if estimated_text not in ("true", "false", ""):
            raise Bad(
                RejectReason.BAD_FORMAT,
                f"Data Estimated must be true/false, got {estimated_text!r}",
            )
        value_text = row.get(column, "").strip()
        if not value_text:
            raise Bad(RejectReason.MISSING_FIELD, f"empty {column!r}", column)
        try:
            value = float(value_text)
        except ValueError:
            raise Bad(
                RejectReason.WRONG_TYPE, f"{column!r} is not a number: {value_text!r}"
            ) from None
        method = row.get("Data Estimation Method", "").strip() or None
        return _event(
            zone,
            _finite(value, column),
            parse_timestamp_ms(row.get("Datetime (UTC)", ""), "Datetime (UTC)"),
            SOURCE_EM_CSV,
            "average",
            estimated_text == "true",
            estimation_method=method[:64] if method else None,
            emission_factor=emission_factor,
        )
    except Bad as bad:
        raise CarbonAdapterError(bad.reason, bad.message) from None


def iter_em_csv(
    path: Path | str,
    *,
    zone: str | None = None,
    emission_factor: EmissionFactor = "lifecycle",
) -> Iterator[IntensityEvent]:
    """Events of one Electricity Maps export (plain or .gz), in file order.

    Raises ``DataFileError`` naming the file and line on a bad row.
    """
    path = Path(path)
    column = em_csv_columns(read_header(path), emission_factor)
    key = zone or zone_of(path)
    for line, row in read_rows(path, ("Datetime (UTC)", column)):
        try:
            yield from_em_csv_row(row, key, column, emission_factor)
        except CarbonAdapterError as exc:
            raise DataFileError(path, str(exc), line) from None


# --- Electricity Maps API ------------------------------------------------------------------------


def from_em_api(obj: Mapping[str, Any]) -> list[IntensityEvent]:
    """``carbon-intensity/latest`` (one object) or ``/history`` (``{zone, history: [...]}``)."""
    try:
        history = obj.get("history")
        if history is None:
            return [_em_api_point(obj, None)]
        if type(history) is not list:
            raise Bad(RejectReason.WRONG_TYPE, "history must be an array", "history")
        zone = obj.get("zone")
        return [_em_api_point(p, zone) for p in history]
    except Bad as bad:
        raise CarbonAdapterError(bad.reason, bad.message) from None


def _em_api_point(p: Any, zone: Any) -> IntensityEvent:
    if not isinstance(p, Mapping):
        raise Bad(RejectReason.WRONG_TYPE, "an Electricity Maps point must be an object")
    value = p.get("carbonIntensity")
    if value is None:
        raise Bad(RejectReason.MISSING_FIELD, "carbonIntensity is required", "carbonIntensity")
    factor = p.get("emissionFactorType", "lifecycle")
    estimated = p.get("isEstimated", False)
    if type(estimated) is not bool:
        raise Bad(RejectReason.WRONG_TYPE, "isEstimated must be a boolean", "isEstimated")
    method = p.get("estimationMethod")
    return _event(
        _text(p.get("zone") or zone, "zone"),
        _finite(value, "carbonIntensity"),
        parse_timestamp_ms(p.get("datetime"), "datetime"),
        SOURCE_EM_API,
        "average",
        estimated,
        updated_at_ms=_optional_timestamp_ms(p.get("updatedAt"), "updatedAt"),
        estimation_method=None if method is None else _text(method, "estimationMethod"),
        emission_factor=factor if factor in ("lifecycle", "direct") else None,
    )


# --- WattTime ------------------------------------------------------------------------------------


def from_watttime(obj: Any, zone: str | None = None) -> list[IntensityEvent]:
    """A v3 envelope, a flat point or a v2 list of points -> events (``zone`` overrides)."""
    try:
        if isinstance(obj, list):
            return [_watttime_point(p, {}, zone) for p in obj]
        if not isinstance(obj, Mapping):
            raise Bad(RejectReason.WRONG_TYPE, "WattTime data must be an object or array")
        if "data" in obj:
            meta = obj.get("meta", {})
            data = obj["data"]
            if not isinstance(meta, Mapping) or type(data) is not list:
                raise Bad(RejectReason.WRONG_TYPE, "WattTime envelope needs meta{} and data[]")
            return [_watttime_point(p, meta, zone) for p in data]
        return [_watttime_point(obj, {}, zone)]
    except Bad as bad:
        raise CarbonAdapterError(bad.reason, bad.message) from None


def _watttime_point(p: Any, meta: Mapping[str, Any], zone: str | None) -> IntensityEvent:
    if not isinstance(p, Mapping):
        raise Bad(RejectReason.WRONG_TYPE, "a WattTime point must be an object")
    signal = p.get("signal_type", meta.get("signal_type", "co2_moer"))
    if type(signal) is not str or signal not in _WATTTIME_SIGNALS:
        raise Bad(
            RejectReason.BAD_FORMAT,
            f"unsupported WattTime signal_type {str(signal)[:40]!r} "
            f"(supported: {sorted(_WATTTIME_SIGNALS)})",
            "signal_type",
        )
    units = p.get("units", meta.get("units", "lbs_co2_per_mwh"))
    factor = _UNIT_FACTORS.get(units.lower()) if type(units) is str else None
    if factor is None:
        raise Bad(RejectReason.BAD_FORMAT, f"unsupported units {str(units)[:40]!r}", "units")
    where = zone or p.get("region") or p.get("ba") or meta.get("region")
    ts_ms = parse_timestamp_ms(p.get("point_time"), "point_time")
    generated_ms = _optional_timestamp_ms(meta.get("generated_at"), "generated_at")
    forecast = generated_ms is not None and ts_ms > generated_ms
    return _event(
        _text(where, "region"),
        _finite(p.get("value"), "value") * factor,
        ts_ms,
        SOURCE_WATTTIME,
        _WATTTIME_SIGNALS[signal],
        forecast,
        updated_at_ms=generated_ms,
        estimation_method="forecast" if forecast else None,
        emission_factor="direct",
    )
