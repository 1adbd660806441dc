"""Grid carbon intensity readings and an immutable per-zone "latest" view.

Reading in force: a request at event time ``t`` is priced with the zone's newest retained reading
at or before ``t`` (live this is simply the latest; in a replay it keeps readings from the future
out of the decision). Staleness rule (documented fallback, see docs/routing.md): that reading is
*stale* if it is missing or ``t - reading.ts_ms > max_age_ms``. A stale zone is
priced at a conservative value: the maximum intensity the view retained for that zone (its
readings within ``history_ms`` of the zone's newest reading), or, if the view never saw the zone,
``static_g_per_kwh`` from the policy config. The decision records ``intensity_stale=True``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.core.errors import IntensityError

DEFAULT_HISTORY_MS = 24 * 3_600_000
MAX_HISTORY_READINGS = 96


@dataclass(frozen=True, slots=True)
class IntensityReading:
    """One intensity value for a zone. ``source_offset`` is the offset of the Kafka record that
    carried it (or -1 when not from Kafka), so a decision can point at its input."""

    zone: str
    intensity_g_per_kwh: float
    ts_ms: int
    source: str = "unknown"
    signal_type: str = "average"
    estimated: bool = False
    source_offset: int = -1

    def __post_init__(self) -> None:
        if not isinstance(self.zone, str) or not self.zone:
            raise IntensityError("zone must be a non-empty string")
        v = self.intensity_g_per_kwh
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise IntensityError(f"intensity_g_per_kwh must be finite and >= 0, got {v!r}")
        if isinstance(self.ts_ms, bool) or not isinstance(self.ts_ms, int) or self.ts_ms < 0:
            raise IntensityError("ts_ms must be an integer >= 0")
        if self.signal_type not in ("average", "marginal"):
            raise IntensityError(f"signal_type must be average|marginal, got {self.signal_type!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "intensity_g_per_kwh": self.intensity_g_per_kwh,
            "ts_ms": self.ts_ms,
            "source": self.source,
            "signal_type": self.signal_type,
            "estimated": self.estimated,
            "source_offset": self.source_offset,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IntensityReading:
        try:
            return cls(
                zone=d["zone"],
                intensity_g_per_kwh=d["intensity_g_per_kwh"],
                ts_ms=d["ts_ms"],
                source=str(d.get("source", "unknown")),
                signal_type=str(d.get("signal_type", "average")),
                estimated=bool(d.get("estimated", False)),
                source_offset=int(d.get("source_offset", -1)),
            )
        except KeyError as e:
            raise IntensityError(f"missing field {e.args[0]}") from None


@dataclass(frozen=True, slots=True)
class IntensityInForce:
    """What a decision used for one zone at one event time."""

    zone: str
    intensity_g_per_kwh: float
    reading: IntensityReading | None
    age_ms: int | None
    stale: bool


class IntensityView:
    """Immutable map zone -> latest reading, plus a short history for the stale fallback.

    ``with_reading`` returns a new view; an older reading than the zone's latest only enters the
    history (out-of-order delivery never moves "latest" backwards).
    """

    __slots__ = ("_history", "_history_ms", "_latest", "_max")

    def __init__(
        self,
        latest: Mapping[str, IntensityReading] | None = None,
        history: Mapping[str, tuple[IntensityReading, ...]] | None = None,
        history_ms: int = DEFAULT_HISTORY_MS,
    ) -> None:
        self._latest: dict[str, IntensityReading] = dict(latest or {})
        self._history: dict[str, tuple[IntensityReading, ...]] = dict(history or {})
        for z, r in self._latest.items():
            if z not in self._history:
                self._history[z] = (r,)
        self._history_ms = history_ms
        self._max = {
            z: max(r.intensity_g_per_kwh for r in h) for z, h in self._history.items() if h
        }

    @classmethod
    def from_readings(
        cls, readings: Iterable[IntensityReading], history_ms: int = DEFAULT_HISTORY_MS
    ) -> IntensityView:
        view = cls(history_ms=history_ms)
        for r in readings:
            view = view.with_reading(r)
        return view

    def with_reading(self, r: IntensityReading) -> IntensityView:
        latest = dict(self._latest)
        cur = latest.get(r.zone)
        newest_ts = r.ts_ms if cur is None else max(cur.ts_ms, r.ts_ms)
        if cur is None or r.ts_ms >= cur.ts_ms:
            latest[r.zone] = r
        hist = [
            h
            for h in (*self._history.get(r.zone, ()), r)
            if newest_ts - h.ts_ms <= self._history_ms
        ]
        history = dict(self._history)
        history[r.zone] = tuple(hist[-MAX_HISTORY_READINGS:])
        return IntensityView(latest, history, self._history_ms)

    def _in_force(self, zone: str, ts_ms: int) -> IntensityReading | None:
        """The newest retained reading at or before ``ts_ms``. Live, that is the latest reading;
        in a replay where the feed ran ahead of the requests it keeps future readings out of a
        decision. None if every retained reading is newer than ``ts_ms`` (the zone then has no
        reading in force: stale)."""
        r = self._latest.get(zone)
        if r is None or r.ts_ms <= ts_ms:
            return r
        best: IntensityReading | None = None
        for h in self._history.get(zone, ()):
            if h.ts_ms <= ts_ms and (best is None or h.ts_ms > best.ts_ms):
                best = h
        return best

    def history(self, zone: str) -> tuple[IntensityReading, ...]:
        """The zone's retained readings (the latest included), in no particular order."""
        hist = self._history.get(zone, ())
        latest = self._latest.get(zone)
        if latest is not None and latest not in hist:
            hist = (*hist, latest)
        return hist

    def latest(self, zone: str) -> IntensityReading | None:
        return self._latest.get(zone)

    def recent_max(self, zone: str) -> float | None:
        return self._max.get(zone)

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(sorted(self._latest))

    def resolve(
        self, zone: str, ts_ms: int, max_age_ms: int, static_g_per_kwh: float
    ) -> IntensityInForce:
        """The intensity to price ``zone`` at event time ``ts_ms`` (applies the stale rule)."""
        r = self._in_force(zone, ts_ms)
        if r is None:  # no reading, or none at or before ts_ms: stale, priced conservatively
            return IntensityInForce(zone, self._max.get(zone, static_g_per_kwh), None, None, True)
        age = max(0, ts_ms - r.ts_ms)
        if age > max_age_ms:
            fallback = self._max.get(zone, static_g_per_kwh)
            return IntensityInForce(zone, fallback, r, age, True)
        return IntensityInForce(zone, r.intensity_g_per_kwh, r, age, False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "history_ms": self._history_ms,
            "history": {z: [r.to_dict() for r in h] for z, h in sorted(self._history.items())},
            "latest": {z: r.to_dict() for z, r in sorted(self._latest.items())},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IntensityView:
        try:
            latest = {z: IntensityReading.from_dict(r) for z, r in d.get("latest", {}).items()}
            hist = {
                z: tuple(IntensityReading.from_dict(r) for r in h)
                for z, h in d.get("history", {}).items()
            }
            return cls(latest, hist, int(d.get("history_ms", DEFAULT_HISTORY_MS)))
        except (TypeError, AttributeError, ValueError) as e:
            raise IntensityError(f"bad intensity view: {e}") from e


def intensity_view_to_columns(view: IntensityView) -> dict[str, Any]:
    """A compact JSON-safe form of ``view`` for the routing-context record: per zone its
    retained readings as columns (a column whose values are all equal is that one value)
    and the index of its latest reading among them. ~40 B per reading instead of ~160."""
    zones: dict[str, Any] = {}
    latest = view._latest
    for z, hist in sorted(view._history.items()):
        cur = latest.get(z)
        zones[z] = {
            "ts_ms": [r.ts_ms for r in hist],
            "intensity_g_per_kwh": [r.intensity_g_per_kwh for r in hist],
            "source_offset": [r.source_offset for r in hist],
            "source": _column([r.source for r in hist]),
            "signal_type": _column([r.signal_type for r in hist]),
            "estimated": _column([r.estimated for r in hist]),
            # The latest reading is normally the newest retained one; kept whole otherwise.
            "latest": None if cur is None else (hist.index(cur) if cur in hist else cur.to_dict()),
        }
    return {"history_ms": view._history_ms, "zones": zones}


def intensity_view_from_columns(d: Mapping[str, Any]) -> IntensityView:
    """The inverse of ``intensity_view_to_columns`` (raises ``IntensityError``)."""
    try:
        latest: dict[str, IntensityReading] = {}
        history: dict[str, tuple[IntensityReading, ...]] = {}
        for z, c in d["zones"].items():
            n = len(c["ts_ms"])
            src, sig, est = (_expand(c[k], n) for k in ("source", "signal_type", "estimated"))
            hist = tuple(
                IntensityReading(z, v, t, s, g, e, o)
                for v, t, s, g, e, o in zip(
                    c["intensity_g_per_kwh"],
                    c["ts_ms"],
                    src,
                    sig,
                    est,
                    c["source_offset"],
                    strict=True,
                )
            )
            history[z] = hist
            cur = c.get("latest")
            if isinstance(cur, int) and not isinstance(cur, bool):
                latest[z] = hist[cur]
            elif isinstance(cur, Mapping):
                latest[z] = IntensityReading.from_dict(cur)
        return IntensityView(latest, history, int(d["history_ms"]))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise IntensityError(f"bad intensity columns: {e!r}") from e


def _column(values: list[Any]) -> Any:
    return values[0] if values and all(v == values[0] for v in values) else values


def _expand(col: Any, n: int) -> list[Any]:
    if isinstance(col, list):
        if len(col) != n:
            raise ValueError(f"column of {len(col)} values for {n} readings")
        return col
    return [col] * n


def trim_history(
    readings: Iterable[IntensityReading], history_ms: int = DEFAULT_HISTORY_MS
) -> tuple[IntensityReading, ...]:
    """The readings a zone keeps: those within ``history_ms`` of its newest one, oldest first,
    at most ``MAX_HISTORY_READINGS`` (the newest). What the replicated intensity table stores
    per zone, so the stale fallback's maximum survives a restart."""
    hist = list(readings)
    if not hist:
        return ()
    newest = max(r.ts_ms for r in hist)
    keep = sorted((r for r in hist if newest - r.ts_ms <= history_ms), key=lambda r: r.ts_ms)
    return tuple(keep[-MAX_HISTORY_READINGS:])
