"""TenantWork's rolling window against a plain reference: the window as it was first written
(a [spend, count] list per bucket, a full scan of the buckets on every bucket step)."""

from __future__ import annotations

import random

from streams.core.tenant import TenantState, TenantWork


class _Reference:
    def __init__(self, st: TenantState, bucket_ms: int, n_buckets: int) -> None:
        self.st, self.bucket_ms, self.n_buckets = st, bucket_ms, n_buckets
        self.wm_ms = st.watermark_ms
        self.wm_bucket = st.watermark_ms // bucket_ms if st.watermark_ms >= 0 else -(1 << 62)
        self.buckets = {b: [s, float(c)] for b, s, c in st.buckets}
        self.spend_g, self.count, self.seq = st.window_spend_g, st.window_count, st.seq
        self._evict()

    def _evict(self) -> None:
        lo = self.wm_bucket - self.n_buckets
        for b in sorted(b for b in self.buckets if b <= lo):
            s, c = self.buckets.pop(b)
            self.spend_g -= s
            self.count -= int(c)
        if not self.buckets:
            self.spend_g = 0.0
            self.count = 0

    def advance(self, ts_ms: int) -> bool:
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
        else:
            v[0] += co2_g
            v[1] += 1.0
        self.spend_g += co2_g
        self.count += 1

    def freeze(self) -> TenantState:
        return TenantState(
            self.st.tenant,
            buckets=tuple((b, v[0], int(v[1])) for b, v in sorted(self.buckets.items())),
            watermark_ms=self.wm_ms,
            seq=self.seq,
            window_spend_g=self.spend_g,
            window_count=self.count,
        )


def _run(
    cls: type[TenantWork] | type[_Reference],
    st: TenantState,
    events: list[tuple[int, float]],
    bucket_ms: int,
    n_buckets: int,
) -> tuple[TenantState, list[tuple[bool, float, int]]]:
    work = cls(st, bucket_ms, n_buckets)
    seen = []
    for ts, co2 in events:
        inside = work.advance(ts)
        seen.append((inside, work.spend_g, work.count))
        work.charge(ts, co2, inside)
    return work.freeze(), seen


def test_window_matches_reference_with_late_and_gapped_events() -> None:
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
            want, want_seen = _run(_Reference, st, events, bucket_ms, n_buckets)
            assert got_seen == want_seen  # bit-identical floats, step by step
            assert got.buckets == want.buckets
            assert (got.window_spend_g, got.window_count, got.watermark_ms, got.seq) == (
                want.window_spend_g,
                want.window_count,
                want.watermark_ms,
                want.seq,
            )
            assert [tuple(map(type, b)) for b in got.buckets] == [(int, float, int)] * len(
                got.buckets
            )  # what the changelog encodes
            st = got
