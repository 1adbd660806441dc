"""Request-id dedupe index, stored in a table co-partitioned with requests.

Ids are scoped by tenant (``dedupe_key``). They are written to the changelog **one record per
checkpoint and partition**, not one per id: ``b:<partition>:<seq> -> [[ts_ms, ...], [key, ...]]``
(arrival times and keys of the ids first seen in that batch). A record is tombstoned once every id
in it has been evicted. Per request that is one changelog record less on the hot path, and one
tombstone less later (four records per request became two: decision and dispatch).
Earlier changelogs held one ``r:<key> -> b"<partition>,<ts_ms>"`` per id; those still load,
each as a record of one id.

Per partition, as of the last durable checkpoint: ``w:<partition>`` = next offset of the
decisions partition (the watermark) and ``o:<partition>`` = next offset of the requests
partition to read (the direct hot path's consumer position). The guarantee built on them is
described in ``docs/architecture.md`` ("Dedupe"): a request id gets at most one decision record
per tenant, ever.

Memory is bounded: per partition, ids that arrived more than ``window_ms`` before the newest
one, or beyond ``max_per_partition``, are evicted. Times are arrival times (the requests
record's log-append time, which the router passes in), never a producer's event time: one
tenant's clock must not decide how long another tenant's ids are remembered. An id evicted
while others of its record are still remembered comes back after a restart (its record is
reloaded) until the next checkpoint evicts it again: the index may remember more than the
bounds, never less.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import MutableMapping
from typing import Any

import orjson

from streams.app.checkpoint import POSITION_KEY, REQUEST_KEY, WATERMARK_KEY, encode_json
from streams.app.sink import BatchSink

BATCH_KEY = b"b:"
_PENDING = b""  # record key of an id added since the last checkpoint
_MAX_IDS_PER_RECORD = 1_000  # bounds a record's size (keys are at most a few hundred bytes)


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
        self._ids: dict[str, bytes] = {}  # remembered id -> key of its changelog record
        self._live: dict[bytes, int] = {}  # record key -> its ids still remembered
        # Ids added since the last checkpoint, flat per partition (ts, key, ts, key, ...): no
        # tuple per id (GC-tracked objects on the hot path).
        self._new: dict[int, list[Any]] = defaultdict(list)
        # Eviction order per partition as two parallel queues (event time, key).
        self._order: dict[int, tuple[deque[int], deque[str]]] = defaultdict(
            lambda: (deque(), deque())
        )
        self._newest_ts: dict[int, int] = defaultdict(lambda: -1)
        self._next_seq: dict[int, int] = defaultdict(int)
        self._marks: dict[bytes, int] = {}  # w:<p> / o:<p> -> offset, not yet checkpointed
        self._loaded = False

    def _load(self) -> None:
        """Rebuild the ids, their records and the eviction order from the (recovered) store."""
        entries: list[tuple[int, int, str, bytes]] = []
        for key, value in list(self._store.items()):
            if key.startswith(BATCH_KEY):
                p_raw, seq_raw = key[len(BATCH_KEY) :].split(b":", 1)
                partition, seq = int(p_raw), int(seq_raw)
                times, ids = orjson.loads(value)
                entries.extend(
                    (int(ts), partition, str(k), key) for ts, k in zip(times, ids, strict=True)
                )
                self._next_seq[partition] = max(self._next_seq[partition], seq + 1)
            elif key.startswith(REQUEST_KEY):
                partition, ts_ms = _entry(value)
                entries.append((ts_ms, partition, key[len(REQUEST_KEY) :].decode(), key))
        self._ids.clear()
        self._live.clear()
        for ts_ms, partition, k, record in sorted(entries):
            self._remember(k, partition, ts_ms, record)
            self._live[record] = self._live.get(record, 0) + 1
        for partition, flat in self._new.items():  # added before a reset, not yet written
            for ts_ms, k in zip(flat[0::2], flat[1::2], strict=True):
                self._remember(k, partition, ts_ms, _PENDING)
        self._loaded = True

    def _remember(self, key: str, partition: int, ts_ms: int, record: bytes) -> None:
        self._ids[key] = record
        times, keys = self._order[partition]
        times.append(ts_ms)
        keys.append(key)
        if ts_ms > self._newest_ts[partition]:
            self._newest_ts[partition] = ts_ms

    def reset(self) -> None:
        """After a rebalance: forget the in-memory view; the table store is the truth (ids
        added since the last checkpoint are kept and still written by the next one)."""
        self._order.clear()
        self._newest_ts.clear()
        self._marks.clear()
        self._ids.clear()
        self._live.clear()
        self._next_seq.clear()
        self._loaded = False

    def seen(self, request_id: str) -> bool:
        if not self._loaded:
            self._load()
        return request_id in self._ids

    def add(self, request_id: str, partition: int, arrival_ms: int) -> None:
        if not self._loaded:
            self._load()
        self._new[partition].extend((arrival_ms, request_id))
        self._remember(request_id, partition, arrival_ms, _PENDING)

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
        """Queue the new ids (one record per partition, per ``_MAX_IDS_PER_RECORD``), the
        tombstones of records whose ids are all evicted, and the marks; returns records queued."""
        if not self._loaded:
            self._load()
        n = 0
        for partition, flat in self._new.items():
            for lo in range(0, len(flat), 2 * _MAX_IDS_PER_RECORD):
                chunk = flat[lo : lo + 2 * _MAX_IDS_PER_RECORD]
                keys = chunk[1::2]
                seq = self._next_seq[partition]
                self._next_seq[partition] = seq + 1
                record = b"%s%d:%d" % (BATCH_KEY, partition, seq)
                value = encode_json([chunk[0::2], keys])  # kept in the store: right-sized
                self._store[record] = value
                sink.add(self._topic, record, value, partition=partition)
                n += 1
                ids = self._ids
                for k in keys:
                    ids[k] = record
                self._live[record] = len(keys)
        self._new.clear()
        for partition, (times, order) in self._order.items():
            horizon = self._newest_ts[partition] - self._window_ms
            while times and (len(times) > self._max or times[0] < horizon):
                times.popleft()
                record_of = self._ids.pop(order.popleft(), None)
                if record_of is None:
                    continue
                left = self._live.get(record_of, 0) - 1
                if left > 0:
                    self._live[record_of] = left
                    continue
                self._live.pop(record_of, None)
                if self._store.pop(record_of, None) is not None:
                    sink.add(self._topic, record_of, None, partition=partition)
                    n += 1
        for key, next_offset in self._marks.items():
            value = str(next_offset).encode()
            if self._store.get(key) != value:
                self._store[key] = value
                sink.add(self._topic, key, value, partition=int(key[2:]))
                n += 1
        self._marks.clear()
        return n
