"""A metrics writer that never blocks routing.

``add()`` only appends encoded lines to a bounded in-memory buffer under a lock (O(lines), no
I/O). A daemon thread drains the buffer in batches every ``flush_interval_ms`` or as soon as a
batch is full, writes through a ``LineSink`` with bounded retries and exponential backoff, and
counts what it had to drop:

* ``overflow``: the buffer was full when ``add()`` was called (the store is slow or down);
* ``write_failed``: a batch still failed after all retries.

Those counts are themselves written as the ``gar_metrics_writer`` measurement, so a dashboard
can show how much telemetry was lost. A thread rather than an asyncio task because the sink is
a blocking HTTP client and the routing loop must not wait for it either way.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from streams.metrics.line import FieldValue, encode
from streams.metrics.sink import LineSink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterStats:
    added_points: int
    written_points: int
    dropped_overflow_points: int
    dropped_write_failed_points: int
    write_errors: int
    buffered_points: int

    @property
    def dropped_points(self) -> int:
        return self.dropped_overflow_points + self.dropped_write_failed_points


class MetricsWriter:
    def __init__(
        self,
        sink: LineSink,
        *,
        buffer_max_points: int = 50_000,
        batch_size: int = 5_000,
        flush_interval_ms: int = 1_000,
        max_retries: int = 3,
        retry_backoff_ms: int = 200,
        self_tags: dict[str, str] | None = None,
        clock_ms: Callable[[], int] | None = None,
        sleep_s: Callable[[float], None] = time.sleep,
        start: bool = True,
    ) -> None:
        if buffer_max_points < 1 or batch_size < 1:
            raise ValueError("buffer_max_points and batch_size must be positive")
        self._sink = sink
        self._max = buffer_max_points
        self._batch = batch_size
        self._interval_s = flush_interval_ms / 1000.0
        self._retries = max_retries
        self._backoff_s = retry_backoff_ms / 1000.0
        self._self_tags = dict(self_tags or {})
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._sleep_s = sleep_s
        self._buf: deque[str] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()  # one flush at a time (thread vs explicit flush())
        self._added = 0
        self._written = 0
        self._dropped_overflow = 0
        self._dropped_failed = 0
        self._errors = 0
        self._last_warn_s = -math.inf
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    # -- hot path -------------------------------------------------------------------------
    def now_ms(self) -> int:
        return self._clock_ms()

    def add_lines(self, lines: Iterable[str]) -> int:
        """Buffer already-encoded lines; returns how many were dropped for lack of room."""
        batch = list(lines)
        with self._lock:
            room = self._max - len(self._buf)
            kept = batch if len(batch) <= room else batch[: max(room, 0)]
            self._buf.extend(kept)
            dropped = len(batch) - len(kept)
            self._added += len(batch)
            self._dropped_overflow += dropped
            full = len(self._buf) >= self._batch
        if full:
            self._wake.set()
        return dropped

    def add(
        self,
        measurement: str,
        tags: dict[str, str],
        fields: dict[str, FieldValue],
        ts_ms: int | None = None,
    ) -> None:
        line = encode(measurement, tags, fields, self._clock_ms() if ts_ms is None else ts_ms)
        if line is not None:
            self.add_lines((line,))

    # -- background -----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gar-metrics", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.flush()

    def _take(self) -> list[str]:
        with self._lock:
            n = min(self._batch, len(self._buf))
            return [self._buf.popleft() for _ in range(n)]

    def _self_lines(self) -> list[str]:
        stats = self.stats()
        line = encode(
            "gar_metrics_writer",
            self._self_tags,
            {
                "dropped_overflow_points": stats.dropped_overflow_points,
                "dropped_write_failed_points": stats.dropped_write_failed_points,
                "dropped_points": stats.dropped_points,
                "written_points": stats.written_points,
                "buffered_points": stats.buffered_points,
                "write_errors": stats.write_errors,
            },
            self._clock_ms(),
        )
        return [line] if line else []

    def _write_with_retry(self, lines: list[str]) -> bool:
        delay_s = self._backoff_s
        for attempt in range(self._retries + 1):
            try:
                self._sink.write_lines(lines)
                return True
            except Exception as exc:  # any sink failure is counted, never raised to routing
                self._errors += 1
                self._log_failure(type(exc).__name__)
                if attempt < self._retries and not self._stop.is_set():
                    self._sleep_s(delay_s)
                    delay_s *= 2
                elif attempt < self._retries:
                    continue  # closing: retry without sleeping, bounded by max_retries
        return False

    def _log_failure(self, kind: str) -> None:
        """Warn on the first failure and then at most once a minute: a down store must not
        flood the router's log. Type only: an HTTP error body could echo credentials back."""
        now = time.monotonic()
        if now - self._last_warn_s >= 60.0:
            log.warning(
                "metrics store write failing (%s); %d write errors, %d points dropped so far",
                kind,
                self._errors,
                self._dropped_overflow + self._dropped_failed,
            )
            self._last_warn_s = now
        else:
            log.debug("metrics write failed (%s)", kind)

    def flush(self) -> WriterStats:
        """Drain everything buffered now (in batches), plus one self-metrics point."""
        with self._flush_lock:
            while True:
                lines = self._take()
                if not lines:
                    break
                if self._write_with_retry(lines):
                    self._written += len(lines)
                else:
                    self._dropped_failed += len(lines)
                    break  # the store is down: leave the rest for the next tick
            self_lines = self._self_lines()
            if self_lines and self._write_with_retry(self_lines):
                self._written += len(self_lines)
        return self.stats()

    def stats(self) -> WriterStats:
        with self._lock:
            buffered = len(self._buf)
        return WriterStats(
            added_points=self._added,
            written_points=self._written,
            dropped_overflow_points=self._dropped_overflow,
            dropped_write_failed_points=self._dropped_failed,
            write_errors=self._errors,
            buffered_points=buffered,
        )

    def close(self, timeout_s: float = 5.0) -> WriterStats:
        """Stop the thread, flush what is left once, close the sink."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.flush()
        with self._lock:  # what the store never took is lost: count it, do not hide it
            self._dropped_failed += len(self._buf)
            self._buf.clear()
        self._sink.close()
        return self.stats()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetricsWriter(sink={self._sink!r}, buffer_max_points={self._max})"
