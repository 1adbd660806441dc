"""Outputs the broker refuses never take the worker down.

1. The hostile input that crash-looped a worker: a 988,000-byte key with a 60,000-byte
   non-JSON value (1,048,000 bytes, accepted by a requests topic with default settings). Its
   dead letter must fit the dead-letter topic's default limit: the key is bounded, the source
   keeps a prefix, the size and a sha256 of the original key.
2. A dead-letter topic whose ``max.message.bytes`` is lowered to 16 KiB while the worker runs
   (the worker cannot know): large dead letters are shrunk to a prefix plus size and digest of
   the original, batches of small ones are split, and every later record on the same partitions
   is still accepted (the idempotent producer's sequence is not left broken by a refusal).
3. A decisions topic that refuses every decision: each refused decision becomes a dead letter
   of its request (stage ``internal``), so every input still has exactly one outcome.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from faults.helpers import (
    TopicReader,
    account,
    alive,
    alter_topic,
    create_topics,
    layout,
    produce,
    read_until,
    start_worker,
    valid_items,
)
from streams.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.faults]

DEAD_LETTER_LIMIT = 16_384


def _drain(settings: Settings, worker: Any, n_inputs: int, timeout_s: float = 90.0) -> TopicReader:
    lay = layout(settings)
    return read_until(
        settings,
        [lay.decisions, lay.dead_letter],
        lambda r: len(r.accounted) >= n_inputs or not alive(worker),
        timeout_s,
        lay,
    )


def _one_outcome_each(reader: TopicReader, settings: Settings, n_inputs: int) -> Any:
    acc = account(reader, layout(settings))
    outcomes = acc.outcomes()
    assert len(outcomes) == n_inputs, f"{n_inputs - len(outcomes)} inputs without an outcome"
    assert max(outcomes.values()) == 1, "an input with two outcomes"
    return acc


def test_oversized_hostile_input_gets_a_dead_letter_that_fits(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings: Settings = settings_factory(
        topics={"partitions": 1}, worker={"catalog_path": str(catalog_path)}
    )
    create_topics(settings)
    lay = layout(settings)
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        hostile_key = b"k" * 988_000
        hostile_value = b"\x00not json " + b"v" * (60_000 - 10)
        items = [
            *valid_items(20, 2),
            (hostile_key, hostile_value),
            *valid_items(20, 2, start=20),
        ]
        positions = produce(settings, lay.requests, items)
        reader = _drain(settings, worker, len(positions))
        assert alive(worker), worker.log()[-3000:]
    finally:
        worker.stop()
    acc = _one_outcome_each(reader, settings, len(positions))
    assert len(acc.decided) == 40
    [dead_msg] = reader.records[lay.dead_letter]
    assert len(dead_msg.key) <= 256  # bounded, whatever the input's key
    assert len(dead_msg.key) + len(dead_msg.value) < 200_000
    dead = orjson.loads(dead_msg.value)
    assert dead["reason"] == "too_large"  # over max_request_bytes; read no further
    src = dead["source"]
    assert src["key_size_bytes"] == len(hostile_key)
    assert src["key_sha256"] == hashlib.sha256(hostile_key).hexdigest()
    assert hostile_key.startswith(base64.b64decode(src["key_b64"]))
    assert dead["original_size_bytes"] == len(hostile_value)
    assert dead["original_sha256"] == hashlib.sha256(hostile_value).hexdigest()
    assert hostile_value.startswith(base64.b64decode(dead["original_b64"]))


def test_dead_letters_shrink_to_a_topic_limit_lowered_at_run_time(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings: Settings = settings_factory(
        topics={"partitions": 1}, worker={"catalog_path": str(catalog_path), "batch_max": 500}
    )
    create_topics(settings)
    lay = layout(settings)
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        # The worker is running (and has written to the dead-letter topic) before the limit
        # drops, so it learns the limit from the broker's refusals.
        first = produce(settings, lay.requests, [(b"tenant-0", b"{bad")])
        _drain(settings, worker, len(first))
        asyncio.run(
            alter_topic(settings, lay.dead_letter, {"max.message.bytes": str(DEAD_LETTER_LIMIT)})
        )
        big = [(b"tenant-0", b"[" + bytes([65 + i]) * 39_999) for i in range(5)]
        small = [(b"tenant-1", b"{bad json %d" % i) for i in range(400)]
        items: list[tuple[bytes | None, bytes]] = []
        valid = valid_items(200, 2)
        for i in range(400):
            items.append(small[i])
            if i % 2 == 0:
                items.append(valid[i // 2])
            if i % 80 == 0:
                items.append(big[i // 80])
        positions = first + produce(settings, lay.requests, items)
        reader = _drain(settings, worker, len(positions))
        assert alive(worker), worker.log()[-3000:]
    finally:
        worker.stop()
    acc = _one_outcome_each(reader, settings, len(positions))
    assert len(acc.decided) == 200
    assert acc.dead_letter_records == 406
    shrunk = [d for v in acc.dead.values() for d in v if d["original_size_bytes"] == 40_000]
    assert len(shrunk) == 5
    for msg in reader.records[lay.dead_letter][1:]:
        assert len(msg.value) + len(msg.key or b"") < DEAD_LETTER_LIMIT
    for d in shrunk:
        assert d["original_truncated"] is True
        assert len(base64.b64decode(d["original_b64"])) < 16_000
        assert len(d["original_sha256"]) == 64
    print(f"\nrefusals: {worker.log().count('refused')} log lines mention refusals")


def test_refused_decisions_become_dead_letters_of_their_requests(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings: Settings = settings_factory(
        topics={"partitions": 1}, worker={"catalog_path": str(catalog_path), "batch_max": 50}
    )
    create_topics(settings)
    lay = layout(settings)
    # Smaller than any decision record:
    asyncio.run(alter_topic(settings, lay.decisions, {"max.message.bytes": "600"}))
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        items = valid_items(150, 3)
        items[10:10] = [(b"tenant-0", b"{bad")]
        positions = produce(settings, lay.requests, items)
        reader = _drain(settings, worker, len(positions))
        assert alive(worker), worker.log()[-3000:]
    finally:
        worker.stop()
    acc = _one_outcome_each(reader, settings, len(positions))
    assert acc.decision_records == 0
    internal = [d for v in acc.dead.values() for d in v if d["stage"] == "internal"]
    assert len(internal) == 150
    assert {d["reason"] for d in internal} == {"internal_error"}
    assert all("refused" in d["message"] for d in internal)
    assert all(d["request_id"] and d["tenant"] for d in internal)
