"""Per-tenant state: the duals and the rolling event-time carbon-budget window.

The window is ``budget_buckets`` buckets of ``bucket_ms`` event time. Its right edge is the
tenant's watermark (largest request ``ts_ms`` seen), so it only depends on the request stream,
never on a clock: a replay yields the same windows. A late request lands in its own bucket if
that bucket is still inside the window, otherwise it does not count toward the window (its
bucket already expired).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from heapq import heappop, heappush
from typing import Any

from streams.core.errors import StateError

# The key under which a caller hands the core a scope's shared state (the pooled accuracy duals
# of ``PolicyConfig.mu_pooled``: mu, surprise and warm-up per dataset, and the scope's decision
# count in ``seq``). The state's ``tenant`` field is the scope's name ("p3" for requests
# partition 3), which decisions record as ``mu_scope``. Tenant names are printable, so the key
# never collides with a tenant.
SCOPE_BOOK = "\x00scope"
DEFAULT_SCOPE = "all"


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
    chain: str = ""
    """The ``mac`` of the tenant's last decision record (the head of its tamper-evident
    chain), kept by the shell that writes the records; the core passes it through."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "lambda": self.lam,
            "mu": dict(self.mu),
            "nu": self.nu,
            "buckets": self.buckets,  # orjson writes tuples as arrays
            "watermark_ms": self.watermark_ms,
            "seq": self.seq,
            "window_spend_g": self.window_spend_g,
            "window_count": self.window_count,
            "deficit": dict(self.deficit),
            "surprise": dict(self.surprise),
            "warmup": dict(self.warmup),
            "chain": self.chain,
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
                chain=str(d.get("chain", "")),
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
    """Mutable working copy of a ``TenantState`` used inside one ``decide_batch`` call.

    The window is copy-on-write over the state's bucket tuple: ``base`` is shared and never
    changed, ``lo`` counts its buckets evicted so far, and only buckets charged in this work
    live in ``mod``. A batch touches one or two buckets of a tenant (its newest), but a state
    holds up to ``budget_buckets`` of them; converting every bucket to a dict and back per
    tenant per batch was a third of the worker's CPU at moderate load (small batches, many
    tenants each)."""

    __slots__ = (
        "base",
        "bucket_ms",
        "chain",
        "count",
        "deficit",
        "lam",
        "lo",
        "mod",
        "mod_order",
        "mu",
        "n_buckets",
        "nu",
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
        self.base = st.buckets  # ascending (bucket, spend g, count)
        self.lo = 0
        self.mod: dict[int, list[float]] = {}  # bucket -> [spend g, count] charged here
        # mod's bucket indexes as a min-heap: expiry pops the oldest instead of scanning.
        self.mod_order: list[int] = []
        self.spend_g = st.window_spend_g
        self.count = st.window_count
        self.seq = st.seq
        self.chain = st.chain
        self._evict()

    def _evict(self) -> None:
        lo = self.wm_bucket - self.n_buckets
        base, mod, order = self.base, self.mod, self.mod_order
        i, n = self.lo, len(base)
        # Oldest first across base and mod (a mod bucket replaces the base bucket of the same
        # index), so batch and one-at-a-time runs subtract in the same order (float-exact).
        while True:
            nb = base[i][0] if i < n else None
            if order and (nb is None or order[0] <= nb):
                b = order[0]
                if b > lo:
                    break
                heappop(order)
                s, c = mod.pop(b)
                if b == nb:
                    i += 1
                self.spend_g -= s
                self.count -= int(c)
            elif nb is not None and nb <= lo:
                _, s, ci = base[i]
                i += 1
                self.spend_g -= s
                self.count -= ci
            else:
                break
        self.lo = i
        if i == n and not mod:  # avoid float drift once the window empties
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
        v = self.mod.get(b)
        if v is None:
            base = self.base
            j = bisect_left(base, (b,), self.lo)  # (b,) sorts just before (b, spend, count)
            if j < len(base) and base[j][0] == b:
                self.mod[b] = [base[j][1] + co2_g, float(base[j][2]) + 1.0]
            else:
                self.mod[b] = [co2_g, 1.0]
            heappush(self.mod_order, b)
        else:
            v[0] += co2_g
            v[1] += 1.0
        self.spend_g += co2_g
        self.count += 1

    def window(self) -> tuple[tuple[int, float, int], ...]:
        """The live buckets, ascending: the base's not evicted, with mod's merged in."""
        base, lo, mod = self.base, self.lo, self.mod
        if not mod:
            return base[lo:] if lo else base
        keys = sorted(mod)
        j = bisect_left(base, (keys[0],), lo)
        out = list(base[lo:j])
        k = 0
        for entry in base[j:]:
            while k < len(keys) and keys[k] < entry[0]:
                v = mod[keys[k]]
                out.append((keys[k], v[0], int(v[1])))
                k += 1
            if k < len(keys) and keys[k] == entry[0]:
                continue  # replaced by mod's bucket, appended by the next step or the tail
            out.append(entry)
        for key in keys[k:]:
            v = mod[key]
            out.append((key, v[0], int(v[1])))
        return tuple(out)

    def freeze(self) -> TenantState:
        """The final state. The work object must not be used afterwards (its dicts are handed
        over, not copied)."""
        return TenantState(
            self.tenant,
            self.lam,
            self.mu,
            self.nu,
            self.window(),
            self.wm_ms,
            self.seq,
            self.spend_g,
            self.count,
            self.deficit,
            self.surprise or {},
            self.warmup or {},
            self.chain,
        )
