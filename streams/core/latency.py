"""Windowed, mergeable p95 latency sketches (DDSketch, 1% relative accuracy).

Why tumbling event-time windows instead of exponential decay: DDSketch has no native decay, and
decayed weights depend on *when* each partition observed a value, so two per-partition decayed
sketches do not merge into the sketch a single consumer would have built. Windows aligned on
event time (``ts_ms // window_ms``) merge exactly, bucket by bucket, and a replay of the same
completions rebuilds the same sketch. The p95 is taken over the last ``n_windows`` windows
ending at the newest window seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ddsketch import DDSketch

from streams.core.errors import StateError

RELATIVE_ACCURACY = 0.01


def _new() -> DDSketch:
    return DDSketch(relative_accuracy=RELATIVE_ACCURACY)


def sketch_to_dict(s: DDSketch) -> dict[str, Any]:
    store = s._store
    bins = {str(store.offset + i): c for i, c in enumerate(store.bins) if c}
    return {
        "bins": bins,
        "zero": s._zero_count,
        "count": s.count,
        "sum": s.sum,
        "min": s._min if s.count else None,
        "max": s._max if s.count else None,
    }


def sketch_from_dict(d: Mapping[str, Any]) -> DDSketch:
    s = _new()
    try:
        for key, c in d.get("bins", {}).items():
            s._store.add(int(key), float(c))
        s._zero_count = float(d.get("zero", 0.0))
        s._count = float(d["count"])
        s._sum = float(d["sum"])
        if d.get("min") is not None:
            s._min = float(d["min"])
            s._max = float(d["max"])
    except (KeyError, TypeError, ValueError) as e:
        raise StateError(f"bad latency sketch: {e!r}") from e
    return s


class WindowedSketch:
    """Per-window DDSketches for one candidate.

    Quantiles are cached until the next ``add``/``merge``: a routing snapshot reads every
    candidate's quantiles while only the few that received completions changed (re-merging
    all of them was most of the offline evaluation's time). The cache holds exact values."""

    __slots__ = ("_quantiles", "n_windows", "window_ms", "windows")

    def __init__(self, window_ms: int, n_windows: int) -> None:
        self.window_ms = window_ms
        self.n_windows = n_windows
        self.windows: dict[int, DDSketch] = {}
        self._quantiles: dict[tuple[float, ...], tuple[list[float | None], float]] = {}

    def _evict(self) -> None:
        if len(self.windows) > self.n_windows:
            newest = max(self.windows)
            for w in [w for w in self.windows if w <= newest - self.n_windows]:
                del self.windows[w]

    def add(self, ts_ms: int, latency_ms: float) -> None:
        w = ts_ms // self.window_ms
        if self.windows and w <= max(self.windows) - self.n_windows:
            return  # too late: its window already left the horizon
        s = self.windows.get(w)
        if s is None:
            s = self.windows[w] = _new()
        s.add(latency_ms)
        self._quantiles.clear()
        self._evict()

    def merge(self, other: WindowedSketch) -> None:
        self._quantiles.clear()
        for w, s in other.windows.items():
            mine = self.windows.get(w)
            if mine is None:
                mine = self.windows[w] = _new()
            mine.merge(s)
        self._evict()

    def merged(self) -> DDSketch:
        out = _new()
        if self.windows:
            newest = max(self.windows)
            for w, s in self.windows.items():
                if w > newest - self.n_windows:
                    out.merge(s)
        return out

    def quantile(self, q: float) -> tuple[float | None, float]:
        """(q-quantile or None if empty, count)."""
        values, count = self.quantiles((q,))
        return values[0], count

    def quantiles(self, qs: tuple[float, ...]) -> tuple[list[float | None], float]:
        """(each q-quantile, or None if empty; count), merging the windows once."""
        hit = self._quantiles.get(qs)
        if hit is not None:
            return list(hit[0]), hit[1]
        m = self.merged()
        if m.count <= 0:
            out: tuple[list[float | None], float] = ([None] * len(qs), 0.0)
        else:
            out = ([m.get_quantile_value(q) for q in qs], float(m.count))
        self._quantiles[qs] = out
        return list(out[0]), out[1]

    def to_dict(self) -> dict[str, Any]:
        return {str(w): sketch_to_dict(s) for w, s in sorted(self.windows.items())}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], window_ms: int, n_windows: int) -> WindowedSketch:
        ws = cls(window_ms, n_windows)
        try:
            ws.windows = {int(w): sketch_from_dict(s) for w, s in d.items()}  # cache still empty
        except ValueError as e:
            raise StateError(f"bad window key: {e}") from e
        ws._evict()
        return ws
