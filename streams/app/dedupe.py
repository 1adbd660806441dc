"""Request-id dedupe index, stored in a table co-partitioned with requests.

Entries: ``r:<tenant>|<request_id> -> b"<partition>,<ts_ms>"`` (the request's source partition and
event time; ids are scoped by tenant, see ``dedupe_key``); per partition, as of the last durable
checkpoint: ``w:<partition>`` = next offset of the decisions partition (the watermark) and
``o:<partition>`` = next offset of the requests partition to read (the direct hot path's consumer
position). The guarantee built on them is described in ``docs/architecture.md`` ("Dedupe"): a
request id gets at most one decision record per tenant, ever.

Memory is bounded: per partition, ids older than ``window_ms`` of event time behind the newest
id, or beyond ``max_per_partition``, are evicted (tombstoned in the changelog).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import MutableMapping
from typing import Any

import orjson

from streams.app.checkpoint import POSITION_KEY, REQUEST_KEY, WATERMARK_KEY
from streams.app.sink import BatchSink


def dedupe_key(tenant: str, request_id: str) -> str:
    """What makes two requests "the same": one tenant's re-delivery, never another tenant's
    request that happens to reuse the id (that would silently drop it; '|' is not allowed in
    tenant names, so keys cannot collide)."""
    return f"{tenant}|{request_id}"


def _entry(value: bytes) -> tuple[int, int]:
    """``b"<partition>,<ts_ms>"`` (also reads the JSON ``[p, ts]`` of earlier changelogs)."""
    if value[:1] == b"[":
        p, ts = orjson.loads(value)
        return int(p), int(ts)
    p_raw, ts_raw = value.split(b",", 1)
    return int(p_raw), int(ts_raw)


class DedupeIndex:
    def __init__(
        self,
        store: MutableMapping[bytes, bytes],
        changelog_topic: str,
        window_ms: int,
        max_per_partition: int,
    ) -> None:
        self._store = store
        self._topic = changelog_topic
        self._window_ms = window_ms
        self._max = max_per_partition
        # No tuple per id: one id per routed request is kept here, and tuples are GC-tracked
        # objects (every ~10k new ones trigger a young collection; the order's entries also live
        # on into the old generations). New ids flat (key, value, partition, key, ...); the
        # eviction order as two parallel queues (event time, key).
        self._new: list[Any] = []
        self._order: dict[int, tuple[deque[int], deque[bytes]]] = defaultdict(
            lambda: (deque(), deque()))
        self._newest_ts: dict[int, int] = defaultdict(lambda: -1)
        self._marks: dict[bytes, int] = {}  # w:<p> / o:<p> -> offset, not yet checkpointed
        self._loaded = False

    def _load(self) -> None:
        """Rebuild the eviction order from the (recovered) table store."""
        entries = []
        for key, value in list(self._store.items()):
            if key.startswith(REQUEST_KEY):
                partition, ts_ms = _entry(value)
                entries.append((ts_ms, partition, key))
        for ts_ms, partition, key in sorted(entries):
            times, keys = self._order[partition]
            times.append(ts_ms)
            keys.append(key)
            self._newest_ts[partition] = max(self._newest_ts[partition], ts_ms)
        self._loaded = True

    def reset(self) -> None:
        """After a rebalance: forget in-memory order; the table store is the truth."""
        self._order.clear()
        self._newest_ts.clear()
        self._marks.clear()
        self._loaded = False

    def seen(self, request_id: str) -> bool:
        if not self._loaded:
            self._load()
        return REQUEST_KEY + request_id.encode() in self._store

    def add(self, request_id: str, partition: int, ts_ms: int) -> None:
        key = REQUEST_KEY + request_id.encode()
        value = b"%d,%d" % (partition, ts_ms)  # not orjson: see checkpoint.compact
        self._store[key] = value
        self._new.extend((key, value, partition))
        times, keys = self._order[partition]
        times.append(ts_ms)
        keys.append(key)
        if ts_ms > self._newest_ts[partition]:
            self._newest_ts[partition] = ts_ms

    def _mark(self, prefix: bytes, partition: int) -> int | None:
        key = prefix + str(partition).encode()
        if key in self._marks:
            return self._marks[key]
        raw = self._store.get(key)
        return None if raw is None else int(raw)

    def watermark(self, partition: int) -> int | None:
        return self._mark(WATERMARK_KEY, partition)

    def set_watermark(self, partition: int, next_offset: int) -> None:
        self._marks[WATERMARK_KEY + str(partition).encode()] = next_offset

    def position(self, partition: int) -> int | None:
        return self._mark(POSITION_KEY, partition)

    def set_position(self, partition: int, next_offset: int) -> None:
        self._marks[POSITION_KEY + str(partition).encode()] = next_offset

    def checkpoint(self, sink: BatchSink) -> int:
        """Queue new ids, evictions (tombstones) and watermarks; returns records queued."""
        n = 0
        fields = iter(self._new)
        for key, value, partition in zip(fields, fields, fields, strict=True):
            sink.add(self._topic, key, value, partition=partition)
            n += 1
        self._new.clear()
        for partition, (times, keys) in self._order.items():
            horizon = self._newest_ts[partition] - self._window_ms
            while times and (len(times) > self._max or times[0] < horizon):
                times.popleft()
                key = keys.popleft()
                if self._store.pop(key, None) is not None:
                    sink.add(self._topic, key, None, partition=partition)
                    n += 1
        for key, next_offset in self._marks.items():
            value = str(next_offset).encode()
            if self._store.get(key) != value:
                self._store[key] = value
                sink.add(self._topic, key, value, partition=int(key[2:]))
                n += 1
        self._marks.clear()
        return n
