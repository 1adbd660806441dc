"""Consumer lag of the topics Faust reads, from a fake of the Faust consumer's bookkeeping."""

from __future__ import annotations

from typing import Any, NamedTuple

from streams.app.monitoring import faust_lag
from streams.metrics.samples import LagSample


class TP(NamedTuple):
    topic: str
    partition: int


class FakeFaustConsumer:
    def __init__(self, high: dict[TP, int], read: dict[TP, int], committed: dict[TP, int]) -> None:
        self._high = high
        self._read_offset = read  # Faust: the last offset read
        self._committed_offset = committed  # Faust: the next offset the group consumes

    def assignment(self) -> set[TP]:
        return set(self._high)

    def highwater(self, tp: TP) -> Any:
        return self._high[tp]


def test_a_read_but_unprocessed_record_shows_as_uncommitted_not_as_lag() -> None:
    policy, completions = TP("gar.policy", 0), TP("gar.completions", 1)
    consumer = FakeFaustConsumer(
        high={policy: 2, completions: 100, TP("gar.other", 0): 5},
        # the policy at offset 1 was read and dropped before processing: committed stays at 1
        read={policy: 1, completions: 89},
        committed={policy: 1, completions: 80},
    )
    got = sorted(faust_lag(consumer, ("gar.policy", "gar.completions"), "g"), key=lambda s: s.topic)
    assert got == [
        LagSample("gar.completions", 1, "g", lag_messages=10, uncommitted_messages=20),
        LagSample("gar.policy", 0, "g", lag_messages=0, uncommitted_messages=1),
    ]


def test_no_committed_offset_yet_reports_lag_only() -> None:
    tp = TP("gar.policy", 0)
    consumer = FakeFaustConsumer(high={tp: 3}, read={tp: 0}, committed={})
    assert faust_lag(consumer, ("gar.policy",), "g") == [LagSample("gar.policy", 0, "g", 2, None)]
