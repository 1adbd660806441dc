"""CheckpointedMap: only touched keys are written; dirty entries survive an invalidate."""

from __future__ import annotations

import asyncio
from typing import Any

from support.fake_producer import FakeProducer

from streams.app.checkpoint import CheckpointedMap, decode_json, encode_json
from streams.app.sink import BatchSink


def test_checkpointed_map_writes_only_touched_keys_and_keeps_dirty_on_invalidate() -> None:
    store: dict[bytes, bytes] = {b"x:a": encode_json({"v": 1})}
    m: CheckpointedMap[Any] = CheckpointedMap(store, "cl", encode_json, decode_json, b"x:")
    assert m.get("a") == {"v": 1} and m.get("b") is None
    m.put("b", {"v": 2}, partition=3)
    m.invalidate()
    assert m.get("b") == {"v": 2} and m.dirty_count() == 1
    prod = FakeProducer()
    sink = BatchSink(prod)
    assert m.checkpoint(sink) == 1
    asyncio.run(sink.flush())
    assert prod.records("cl") == [(3, b"x:b", encode_json({"v": 2}))]
    assert store[b"x:b"] == encode_json({"v": 2}) and m.dirty_count() == 0
