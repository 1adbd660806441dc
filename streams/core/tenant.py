"""Per-tenant state: the duals and the rolling event-time carbon-budget window.

The window is ``budget_buckets`` buckets of ``bucket_ms`` event time. Its right edge is the
tenant's watermark (largest request ``ts_ms`` seen), so it only depends on the request stream,
never on a clock: a replay yields the same windows. A late request lands in its own bucket if
that bucket is still inside the window, otherwise it does not count toward the window (its
bucket already expired).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from heapq import heappop, heappush
from typing import Any

from streams.core.errors import StateError


@dataclass(frozen=True, slots=True)
class Duals:
    """The duals that priced one decision: carbon lambda, accuracy mu (of the request's
    dataset) and latency nu."""

    lam: float
    mu: float
    nu: float

    def to_dict(self) -> dict[str, float]:
        return {"lambda": self.lam, "mu": self.mu, "nu": self.nu}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Duals:
        return cls(float(d["lambda"]), float(d["mu"]), float(d["nu"]))


@dataclass(frozen=True, slots=True)
class TenantState:
    tenant: str
    lam: float = 0.0
    mu: Mapping[str, float] = field(default_factory=dict)
    """Accuracy dual per dataset."""
    nu: float = 0.0
    buckets: tuple[tuple[int, float, int], ...] = ()
    """(bucket index = ts_ms // bucket_ms, spend g CO2, request count), ascending."""
    watermark_ms: int = -1
    seq: int = 0
    """Number of decisions folded into this state (an audit can check the chain)."""
    window_spend_g: float = 0.0
    """Running total of the window's spend (kept, not re-summed, so that batch and one-at-a-time
    processing perform the identical float operations)."""
    window_count: int = 0
    deficit: Mapping[str, float] = field(default_factory=dict)
    """gar-target's running accuracy deficit per dataset (sum of floor - chosen accuracy)."""
    surprise: Mapping[str, float] = field(default_factory=dict)
    """Correctness feedback not yet counted by the mu dual, per dataset: the sum over the
    tenant's completions since its last decision on that dataset of feedback_weight x
    (correct - estimated accuracy of the serving model). gar-pd adds it to the accuracy its
    next mu step counts (see ``fold_feedback``)."""
    warmup: Mapping[str, int] = field(default_factory=dict)
    """gar-pd's mu warm-up (``PolicyConfig.mu_warmup_gain``): per dataset, the boosted mu
    steps the tenant has left on it (absent = none)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "lambda": self.lam,
            "mu": dict(self.mu),
            "nu": self.nu,
            "buckets": [list(b) for b in self.buckets],
            "watermark_ms": self.watermark_ms,
            "seq": self.seq,
            "window_spend_g": self.window_spend_g,
            "window_count": self.window_count, "deficit": dict(self.deficit),
            "surprise": dict(self.surprise),
            "warmup": dict(self.warmup),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TenantState:
        try:
            st = cls(
                tenant=str(d["tenant"]),
                lam=float(d["lambda"]),
                mu={str(k): float(v) for k, v in d.get("mu", {}).items()},
                nu=float(d.get("nu", 0.0)),
                buckets=tuple((int(b[0]), float(b[1]), int(b[2])) for b in d.get("buckets", [])),
                watermark_ms=int(d.get("watermark_ms", -1)),
                seq=int(d.get("seq", 0)),
                deficit={str(k): float(v) for k, v in d.get("deficit", {}).items()},
                surprise={str(k): float(v) for k, v in d.get("surprise", {}).items()},
                warmup={str(k): int(v) for k, v in d.get("warmup", {}).items()},
            )
            spend = (
                float(d["window_spend_g"])
                if "window_spend_g" in d
                else sum(b[1] for b in st.buckets)
            )
            count = int(d["window_count"]) if "window_count" in d else sum(b[2] for b in st.buckets)
            st = replace(st, window_spend_g=spend, window_count=count)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise StateError(f"bad tenant state: {e!r}") from e
        if st.lam < 0 or st.nu < 0 or any(v < 0 for v in st.mu.values()):
            raise StateError("duals must be >= 0")
        if not all(math.isfinite(v) for v in st.surprise.values()):
            raise StateError("surprise must be finite")
        if any(v < 0 for v in st.warmup.values()):
            raise StateError("warmup counts must be >= 0")
        return st


class TenantWork:
    """Mutable working copy of a ``TenantState`` used inside one ``decide_batch`` call."""

    __slots__ = (
        "bucket_ms",
        "buckets",
        "count",
        "deficit",
        "lam",
        "mu",
        "n_buckets",
        "nu",
        "order",
        "seq",
        "spend_g",
        "surprise",
        "tenant",
        "warmup",
        "wm_bucket",
        "wm_ms",
    )

    def __init__(self, st: TenantState, bucket_ms: int, n_buckets: int) -> None:
        self.tenant = st.tenant
        self.lam = st.lam
        self.mu = dict(st.mu)
        self.nu = st.nu
        self.deficit = dict(st.deficit)
        self.surprise: dict[str, float] | None = dict(st.surprise) if st.surprise else None
        self.warmup: dict[str, int] | None = dict(st.warmup) if st.warmup else None
        self.bucket_ms = bucket_ms
        self.n_buckets = n_buckets
        self.wm_ms = st.watermark_ms
        self.wm_bucket = st.watermark_ms // bucket_ms if st.watermark_ms >= 0 else -(1 << 62)
        self.buckets: dict[int, list[float]] = {b: [s, float(c)] for b, s, c in st.buckets}
        # The window's bucket indexes as a min-heap (a sorted list is one), so that expiring
        # buckets pops the oldest instead of scanning the whole window on every bucket step.
        self.order: list[int] = sorted(self.buckets)
        self.spend_g = st.window_spend_g
        self.count = st.window_count
        self.seq = st.seq
        self._evict()

    def _evict(self) -> None:
        lo = self.wm_bucket - self.n_buckets
        buckets = self.buckets
        order = self.order
        # Oldest first, so batch and one-at-a-time runs subtract in the same order (float-exact).
        while order and order[0] <= lo:
            s, c = buckets.pop(heappop(order))
            self.spend_g -= s
            self.count -= int(c)
        if not buckets:  # avoid float drift once the window empties
            self.spend_g = 0.0
            self.count = 0

    def advance(self, ts_ms: int) -> bool:
        """Move the watermark to ``ts_ms`` (if later). Returns whether ``ts_ms`` is inside the
        window (a request that is too late does not count toward it)."""
        b = ts_ms // self.bucket_ms
        if ts_ms > self.wm_ms:
            self.wm_ms = ts_ms
            if b > self.wm_bucket:
                self.wm_bucket = b
                self._evict()
        return b > self.wm_bucket - self.n_buckets

    def charge(self, ts_ms: int, co2_g: float, in_window: bool) -> None:
        self.seq += 1
        if not in_window:
            return
        b = ts_ms // self.bucket_ms
        v = self.buckets.get(b)
        if v is None:
            self.buckets[b] = [co2_g, 1.0]
            heappush(self.order, b)
        else:
            v[0] += co2_g
            v[1] += 1.0
        self.spend_g += co2_g
        self.count += 1

    def freeze(self) -> TenantState:
        """The final state. The work object must not be used afterwards (its dicts are handed
        over, not copied)."""
        items = self.buckets.items()
        return TenantState(
            self.tenant, self.lam, self.mu, self.nu,
            tuple([(b, v[0], int(v[1])) for b, v in (sorted(items) if len(items) > 1 else items)]),
            self.wm_ms, self.seq, self.spend_g, self.count, self.deficit, self.surprise or {},
            self.warmup or {},
        )
