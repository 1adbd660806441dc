"""TenantWork's rolling window against a reference that scans every bucket on every step."""

from __future__ import annotations

import random

from streams.core.tenant import TenantState, TenantWork


class _ScanAlways(TenantWork):
    """The window as it was before the heap of bucket indexes: a full scan per bucket step."""

    __slots__ = ()

    def _evict(self) -> None:
        lo = self.wm_bucket - self.n_buckets
        old = sorted(b for b in self.buckets if b <= lo)
        for b in old:
            s, c = self.buckets.pop(b)
            self.spend_g -= s
            self.count -= int(c)
        if not self.buckets:
            self.spend_g = 0.0
            self.count = 0


def _run(cls: type[TenantWork], st: TenantState, events: list[tuple[int, float]],
         bucket_ms: int, n_buckets: int) -> tuple[TenantState, list[tuple[bool, float, int]]]:
    work = cls(st, bucket_ms, n_buckets)
    seen = []
    for ts, co2 in events:
        inside = work.advance(ts)
        seen.append((inside, work.spend_g, work.count))
        work.charge(ts, co2, inside)
    return work.freeze(), seen


def test_window_matches_full_scan_with_late_and_gapped_events() -> None:
    rng = random.Random(7)
    bucket_ms, n_buckets = 1_000, 6
    for trial in range(200):
        st = TenantState(f"t{trial}")
        for _batch in range(4):  # state carried over batches, like the router does
            ts = rng.randrange(0, 30_000)
            events = []
            for _ in range(rng.randrange(1, 30)):
                # mostly forward, sometimes late (old bucket), sometimes a jump past the window
                ts += rng.choice([0, 37, 400, 1_500, 9_000]) if rng.random() < 0.8 else 0
                late = ts - rng.choice([500, 3_000, 7_000]) if rng.random() < 0.2 else ts
                events.append((max(late, 0), rng.random() / 7.0))
            got, got_seen = _run(TenantWork, st, events, bucket_ms, n_buckets)
            want, want_seen = _run(_ScanAlways, st, events, bucket_ms, n_buckets)
            assert got_seen == want_seen  # bit-identical floats, step by step
            assert got == want
            st = got
