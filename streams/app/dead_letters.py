"""Dead letters of the side inputs (completions, carbon intensity, policy): one record each,
counted in the process counters and the metrics."""

from __future__ import annotations

from streams.app.counters import Counters
from streams.app.record_bytes import dead_letter_bytes
from streams.app.sink import BatchSink
from streams.ingress.rejected import Rejected
from streams.metrics import Metrics
from streams.schema import bounded_key


class SideInputDeadLetters:
    def __init__(self, topic: str, counters: Counters, metrics: Metrics) -> None:
        self.topic = topic
        self._counters = counters
        self._metrics = metrics

    def write(
        self, sink: BatchSink, rej: Rejected, key: bytes | None, partition: int, now_ms: int
    ) -> None:
        value = dead_letter_bytes(rej, now_ms)
        sink.add(self.topic, bounded_key(key), value, partition=partition)
        self._counters.dead_letters += 1
        self._metrics.dead_letters({(str(rej.reason), str(rej.stage)): 1})
