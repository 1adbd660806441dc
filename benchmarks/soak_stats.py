"""The soak's arithmetic (no Kafka, no processes): accounting of request positions, RSS growth
after the warm-up, and decision latency per window of requests. ``benchmarks/soak.py`` feeds it
what it read from the broker and sampled from the worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One sample of the run, about a second apart."""

    t_s: float
    """Seconds since the paced load started."""
    requests: int
    """Requests on the broker (summed end offsets of the requests topic)."""
    outcomes: int
    """Decisions plus dead letters on the broker."""
    rss_mb: float
    """The worker's resident set size."""
    completions: int = 0
    """Completions on the broker (the fleet's answers)."""
    completions_received: int = 0
    """Completions the worker has received (its status page)."""


@dataclass(frozen=True)
class RssGrowth:
    warm_mb: float
    """RSS at the first sample with the warm-up's share of the requests decided."""
    warm_t_s: float
    end_mb: float
    """RSS at the last sample (every request decided)."""
    end_t_s: float
    max_mb: float
    growth_pct: float


def rss_growth(samples: Sequence[Sample], warmup_outcomes: int) -> RssGrowth:
    """RSS at the end of the warm-up (the first sample with at least ``warmup_outcomes``
    outcomes) against the last sample, in % of the former."""
    if not samples:
        raise ValueError("no samples")
    warm = next((s for s in samples if s.outcomes >= warmup_outcomes), None)
    if warm is None:
        raise ValueError(f"the warm-up's {warmup_outcomes} outcomes were never reached")
    end = samples[-1]
    return RssGrowth(
        warm_mb=round(warm.rss_mb, 1),
        warm_t_s=round(warm.t_s, 1),
        end_mb=round(end.rss_mb, 1),
        end_t_s=round(end.t_s, 1),
        max_mb=round(max(s.rss_mb for s in samples), 1),
        growth_pct=round(100.0 * (end.rss_mb - warm.rss_mb) / warm.rss_mb, 2),
    )


def trajectory(samples: Sequence[Sample], every: int) -> list[dict[str, Any]]:
    """The run every ``every`` outcomes (the first sample reaching each multiple), then the
    last sample: time, RSS and the completions the worker had not received yet."""
    if not samples:
        return []
    picked: list[Sample] = []
    mark = every
    for s in samples:
        while s.outcomes >= mark:
            if not picked or picked[-1] is not s:
                picked.append(s)
            mark += every
    if not picked or picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    return [
        {
            "t_s": round(s.t_s, 1),
            "outcomes": s.outcomes,
            "rss_mb": round(s.rss_mb, 1),
            "completions_backlog": s.completions - s.completions_received,
        }
        for s in picked
    ]


@dataclass(frozen=True)
class Accounting:
    requests: int
    decided: int
    """Positions with exactly one decision and no dead letter."""
    dead_lettered: int
    """Positions with exactly one dead letter and no decision."""
    lost: int
    """Positions with no outcome at all."""
    decided_twice: int
    """Positions with more than one decision."""
    dead_lettered_twice: int
    decided_and_dead_lettered: int

    @property
    def ok(self) -> bool:
        return self.decided + self.dead_lettered == self.requests


def account(
    requests: Mapping[int, int],
    decisions: Mapping[int, np.ndarray],
    dead_letters: Mapping[int, np.ndarray],
) -> Accounting:
    """Every request position (partition, offset) against its outcomes. ``requests``: the
    number of records per partition of the requests topic (offsets 0..n-1); ``decisions`` and
    ``dead_letters``: per partition, how many of each each offset got (arrays of length n)."""
    totals = {"decided": 0, "dead": 0, "lost": 0, "dec2": 0, "dead2": 0, "both": 0}
    for p, n in requests.items():
        dec = np.asarray(decisions.get(p, np.zeros(n, np.int64)))[:n]
        dead = np.asarray(dead_letters.get(p, np.zeros(n, np.int64)))[:n]
        totals["decided"] += int(np.count_nonzero((dec == 1) & (dead == 0)))
        totals["dead"] += int(np.count_nonzero((dead == 1) & (dec == 0)))
        totals["lost"] += int(np.count_nonzero((dec == 0) & (dead == 0)))
        totals["dec2"] += int(np.count_nonzero(dec > 1))
        totals["dead2"] += int(np.count_nonzero(dead > 1))
        totals["both"] += int(np.count_nonzero((dec > 0) & (dead > 0)))
    return Accounting(
        requests=sum(requests.values()),
        decided=totals["decided"],
        dead_lettered=totals["dead"],
        lost=totals["lost"],
        decided_twice=totals["dec2"],
        dead_lettered_twice=totals["dead2"],
        decided_and_dead_lettered=totals["both"],
    )


@dataclass(frozen=True)
class LatencyWindow:
    first: int
    """Index (in request append order) of the window's first request."""
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def latency_windows(
    request_ts_ms: np.ndarray, latency_ms: np.ndarray, size: int
) -> list[LatencyWindow]:
    """Windows of ``size`` requests in the order they were appended (the request's append
    time; ties keep their given order), p50/p99/max of each; the last may be shorter."""
    if request_ts_ms.shape != latency_ms.shape:
        raise ValueError("one latency per request timestamp")
    order = np.argsort(request_ts_ms, kind="stable")
    lat = np.asarray(latency_ms, dtype=float)[order]
    out = []
    for first in range(0, lat.size, size):
        part = lat[first : first + size]
        p50, p99 = np.percentile(part, [50, 99])
        out.append(
            LatencyWindow(
                first, int(part.size), round(float(p50), 1), round(float(p99), 1), float(part.max())
            )
        )
    return out


def drift(windows: Sequence[LatencyWindow], warmup: int) -> dict[str, Any]:
    """The first window that starts after the warm-up's ``warmup`` requests next to the last
    window, and the change of their p50 and p99 (last - first, ms)."""
    after = [w for w in windows if w.first >= warmup]
    if not after:
        raise ValueError("no window starts after the warm-up")
    first, last = after[0], after[-1]
    return {
        "first": asdict(first),
        "last": asdict(last),
        "p50_change_ms": round(last.p50_ms - first.p50_ms, 1),
        "p99_change_ms": round(last.p99_ms - first.p99_ms, 1),
    }
