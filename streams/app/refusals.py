"""What the worker writes instead of an output record the broker refused (``sink.OnRefused``).

* A dead letter too large for the dead-letter topic is sent again with a shorter prefix of the
  original input (sizes and digests of the whole are kept).
* A decision the decisions topic refuses becomes a dead letter of its request (stage
  ``internal``): the input still has exactly one outcome, and its dispatch record is withheld
  (a dispatch on the wire always has its decision on the wire).
* Anything else (dispatch, changelog records) is logged and counted by the sink.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from streams.app.record_bytes import dead_letter_bytes
from streams.app.router import RawMessage
from streams.app.sink import BatchSink, Refused, Replacement
from streams.ingress.rejected import Rejected, RejectReason, Stage
from streams.kafka.topics import TopicLayout
from streams.schema import dead_letter_key, shrink_dead_letter


class Replacements:
    """``on_refused`` of one sink; ``originals`` are the requests of the batch whose decisions
    the sink carries, ``dispatch`` the sink holding their dispatch records (not flushed yet)."""

    def __init__(
        self,
        layout: TopicLayout,
        originals: Sequence[RawMessage] = (),
        dispatch: BatchSink | None = None,
    ) -> None:
        self._layout = layout
        self._originals = originals
        self._by_position: dict[tuple[int, int], RawMessage] | None = None
        self._dispatch = dispatch

    def __call__(self, refused: Refused) -> Sequence[Replacement]:
        if refused.value is None:
            return ()
        if refused.topic == self._layout.dead_letter:
            return self._smaller_dead_letter(refused)
        if refused.topic == self._layout.decisions:
            return self._dead_letter_instead(refused)
        return ()

    def _smaller_dead_letter(self, r: Refused) -> Sequence[Replacement]:
        if r.max_bytes < 0 or r.value is None:
            return ()  # refused for another reason than its size: a smaller one fares no better
        small = shrink_dead_letter(r.value, r.max_bytes - len(r.key or b""))
        if small is None or len(small) >= len(r.value):
            return ()
        return ((r.topic, r.partition, r.key, small),)

    def _dead_letter_instead(self, r: Refused) -> Sequence[Replacement]:
        try:
            record: dict[str, Any] = orjson.loads(r.value or b"")
            if "request_offset" in record:  # decisions.v2: on its request's partition
                msg = self._original(r.partition, int(record["request_offset"]))
            else:
                src = record["request_source"]
                msg = self._original(int(src["partition"]), int(src["offset"]))
            request_id, tenant = str(record["request_id"]), str(record["tenant"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return ()
        if msg is None:
            return ()
        rej = Rejected(
            "request",
            Stage.INTERNAL,
            RejectReason.INTERNAL_ERROR,
            f"decided (tenant_seq {record.get('tenant_seq')}, charged to the tenant's budget) but "
            f"the decision record was refused by Kafka ({r.error}); not dispatched",
            msg.value or b"",
            msg.source,
            None,
            request_id,
            tenant,
        )
        if self._dispatch is not None:
            tenant_field = orjson.dumps({"tenant": tenant})[1:-1]  # as the dispatch record has it
            self._dispatch.discard(
                set(self._layout.dispatch.values()), request_id.encode(), tenant_field
            )
        now_ms = int(time.time() * 1000)
        value = dead_letter_bytes(rej, now_ms)
        return ((self._layout.dead_letter, msg.partition, dead_letter_key(rej), value),)

    def _original(self, partition: int, offset: int) -> RawMessage | None:
        if self._by_position is None:
            self._by_position = {(m.partition, m.offset): m for m in self._originals}
        return self._by_position.get((partition, offset))
