"""Faust events -> ``RawMessage`` (what the router and the side-input handlers read)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.app.router import RawMessage

RAW_TOPIC: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}
"""Topic arguments: keys and values stay bytes (the ingress parsers decode them)."""


def events_to_raw(events: Sequence[Any]) -> list[RawMessage]:
    out = []
    for ev in events:
        m = ev.message
        ts = m.timestamp
        out.append(
            RawMessage(
                m.topic,
                m.partition,
                m.offset,
                None if ts is None else int(ts * 1000),
                m.key,
                m.value,
            )
        )
    return out
