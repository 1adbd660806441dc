"""End-to-end tests of ``gar worker`` (subprocesses) against the real local broker."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.audit import audited_decisions
from support.worker import (
    create_worker_topics,
    produce,
    read_all,
    read_outputs,
    request_bytes,
    start_worker,
    wait_log,
    worker_layout,
    worker_settings,
)

from streams.config import Settings
from streams.core.intensity import IntensityReading
from streams.kafka.topics import TopicLayout
from streams.schema import encode, intensity_record

pytestmark = pytest.mark.integration
T0_MS = 1_672_531_200_000


def _valid_and_bad(n_valid: int) -> list[tuple[bytes | None, bytes]]:
    items: list[tuple[bytes | None, bytes]] = []
    for i in range(n_valid):
        tenant = f"tenant-{i % 7}"
        items.append((tenant.encode(), request_bytes(i, tenant, T0_MS + i * 1000)))
    return items


@pytest.mark.parametrize("hot_path", ["direct", "faust"])
def test_every_request_is_one_decision_or_one_dead_letter(
    settings_factory: Any, catalog_path: Path, tmp_path: Path, hot_path: str
) -> None:
    settings = worker_settings(settings_factory, catalog_path, hot_path=hot_path)
    create_worker_topics(settings)
    lay = worker_layout(settings)
    items = _valid_and_bad(300)
    bad = [
        (b"t", b"{not json"),  # malformed
        (b"t", b"x" * 20_000),  # oversized
        (b"t", orjson.dumps({"schema_version": 1, "request_id": "bad-1", "tenant": "t"})),
        (b"t", request_bytes(999_001, "t", T0_MS)[:-1] + b',"deny_model":["x"]}'),
        (b"t", request_bytes(999_002, "t", T0_MS, input_tokens=-5)),
    ]
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        asyncio.run(produce(settings, lay.requests, items[:150] + bad + items[150:]))
        out = read_outputs(settings, len(items) + len(bad))
    finally:
        worker.stop()
    decisions = [orjson.loads(m.value) for m in out[lay.decisions]]
    dead = [orjson.loads(m.value) for m in out[lay.dead_letter]]
    assert len(decisions) + len(dead) == len(items) + len(bad), worker.log()[-3000:]
    assert sorted(d["request_id"] for d in decisions) == sorted(
        orjson.loads(v)["request_id"] for _, v in items
    )
    reasons = Counter(d["reason"] for d in dead)
    assert reasons == Counter(
        {
            "invalid_json": 1,
            "too_large": 1,
            "missing_field": 1,
            "unknown_field": 1,
            "out_of_range": 1,
        }
    )
    for d in dead:
        assert d["source"]["topic"] == lay.requests and d["source"]["offset"] >= 0
        assert d["stage"] in ("decode", "validate")
    # Each decision also on its model's dispatch topic, keyed by request id.
    dispatched = {
        m.key.decode(): (topic, orjson.loads(m.value))
        for topic in lay.dispatch.values()
        for m in out[topic]
    }
    assert len(dispatched) == len(decisions)
    for d in decisions:
        topic, disp = dispatched[d["request_id"]]
        assert topic == lay.dispatch[d["model"]]
        assert (disp["model"], disp["region"]) == (d["model"], d["region"])
    # Decisions keyed by tenant, on the request's partition (decisions.v2: the request's
    # offset in that partition), and the run audits clean.
    for m in out[lay.decisions]:
        rec = orjson.loads(m.value)
        assert m.key == rec["tenant"].encode()
        assert rec["schema_version"] == 2 and rec["request_offset"] >= 0
    full = audited_decisions(settings)
    assert {d["request_source"]["partition"] for d in full} <= {0, 1, 2, 3}


def _decisions(out: dict[str, list[Any]], lay: TopicLayout) -> list[tuple[bytes, dict[str, Any]]]:
    return [(m.value, orjson.loads(m.value)) for m in out[lay.decisions]]


def _wait_decided(settings: Settings, lay: TopicLayout, n: int) -> dict[str, list[Any]]:
    def done(out: dict[str, list[Any]]) -> bool:
        return len({orjson.loads(m.value)["request_id"] for m in out[lay.decisions]}) >= n

    return asyncio.run(read_all(settings, [lay.decisions, lay.dead_letter], done, 90.0))


def _latest_changelog(settings: Settings, topic: str) -> dict[bytes, dict[str, Any]]:
    out = asyncio.run(read_all(settings, [topic], lambda _: False, 3.0))
    latest: dict[bytes, dict[str, Any]] = {}
    for m in out[topic]:
        if m.value is not None:
            latest[m.key] = orjson.loads(m.value)
    return latest


def test_killed_worker_restarts_from_changelogs_and_dedupes(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    from streams.core.replay import check_chain

    settings = worker_settings(settings_factory, catalog_path, log_level="info")
    create_worker_topics(settings)
    lay = worker_layout(settings)
    first = _valid_and_bad(200)
    changelog = f"{settings.app_id}-tenant_state-changelog"
    a = start_worker(settings, tmp_path / "a.log")
    try:
        asyncio.run(produce(settings, lay.requests, first))
        _wait_decided(settings, lay, 200)
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:  # until the last batch's checkpoint is durable too
            # Tenants only: the pooled accuracy duals' scope states share the table.
            before = {
                k.decode()[2:]: v
                for k, v in _latest_changelog(settings, changelog).items()
                if not k.decode()[2:].startswith("\x00scope:")
            }
            if sum(v["seq"] for v in before.values()) == 200:
                break
    finally:
        a.kill()  # SIGKILL: no clean shutdown, no final commit
    assert len(before) == 7 and sum(v["seq"] for v in before.values()) == 200
    # Re-deliver 50 old requests (producer retries), then 200 new ones.
    second = [
        (k, request_bytes(i, f"tenant-{i % 7}", T0_MS + i * 1000))
        for i, (k, _) in enumerate(first[:50])
    ]
    second += [
        (f"tenant-{i % 7}".encode(), request_bytes(i, f"tenant-{i % 7}", T0_MS + i * 1000))
        for i in range(200, 400)
    ]
    b = start_worker(settings, tmp_path / "b.log")
    try:
        asyncio.run(produce(settings, lay.requests, second))
        out = _wait_decided(settings, lay, 400)
    finally:
        b.stop()
    decisions = _decisions(out, lay)
    by_id: dict[str, set[bytes]] = {}
    for raw, d in decisions:
        by_id.setdefault(d["request_id"], set()).add(raw)
    assert len(by_id) == 400, b.log()[-2000:]
    assert all(len(v) == 1 for v in by_id.values()), "a request got two different decisions"
    assert len(decisions) == 400, "re-delivered requests were decided again"
    records = [d for _, d in decisions]
    # State recovered: each tenant's chain continues where the changelog left it.
    assert check_chain(records) == []  # log order: tenant chains and pooled mu scopes
    for tenant, st in before.items():
        seqs = sorted(d["tenant_seq"] for d in records if d["tenant"] == tenant)
        assert seqs == list(range(1, len(seqs) + 1))
        nxt = next(d for d in records if d["tenant"] == tenant and d["tenant_seq"] == st["seq"] + 1)
        assert nxt["duals_before"][0] == st["lambda"]
        assert nxt["window_count_before"] == st["window_count"]


def test_two_workers_split_partitions_and_account_for_every_request(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings = worker_settings(settings_factory, catalog_path, log_level="info")
    create_worker_topics(settings)
    lay = worker_layout(settings)
    items = [
        (f"tenant-{i % 23}".encode(), request_bytes(i, f"tenant-{i % 23}", T0_MS + i))
        for i in range(800)
    ]
    workers = [start_worker(settings, tmp_path / f"w{j}.log") for j in range(2)]
    try:
        for wk in workers:
            wait_log(wk, "[^Worker]: Ready", 60.0)
        time.sleep(6.0)  # let the group settle after the second member's join
        # Intensity arrives through one worker's agent; the GlobalTable replicates it to both.
        readings = [
            IntensityReading(z, 100.0 + j, T0_MS - 60_000, "two-workers", "average", False)
            for j, z in enumerate(("GB", "US-MIDA-PJM"))
        ]
        asyncio.run(
            produce(
                settings,
                lay.carbon_intensity,
                [(r.zone.encode(), encode(intensity_record(r))) for r in readings],
            )
        )
        cl = f"{settings.app_id}-intensity-changelog"
        asyncio.run(read_all(settings, [cl], lambda o: len(o[cl]) >= 2, 60.0))
        time.sleep(1.0)  # both workers' changelog readers apply it
        asyncio.run(produce(settings, lay.requests, items))
        out = read_outputs(settings, len(items))
        time.sleep(6.0)  # one more progress line from each worker
    finally:
        for wk in workers:
            wk.stop()
    records = [orjson.loads(m.value) for m in out[lay.decisions]]
    # both workers priced with the replicated readings (the audit rebuilds their contexts)
    assert all(d["intensity"]["source"] == "two-workers" for d in audited_decisions(settings))
    decided = {d["request_id"] for d in records}
    assert decided == {orjson.loads(v)["request_id"] for _, v in items}
    # Re-deliveries around rebalances are deduped: still exactly one decision per request.
    assert len(out[lay.decisions]) == len(items)
    per_worker = [_last_count(wk.log(), "decided") for wk in workers]
    assert all(n > 0 for n in per_worker), per_worker
    assert sum(per_worker) == len(items)


def _last_count(log: str, name: str) -> int:
    found = re.findall(rf"\b{name}=(\d+)", log)
    return int(found[-1]) if found else 0


def test_kill_mid_stream_loses_nothing_and_never_decides_twice(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    from streams.core.replay import check_chain

    settings = worker_settings(settings_factory, catalog_path, batch_max=100)
    create_worker_topics(settings)
    lay = worker_layout(settings)
    n = 4000
    items = [
        (f"tenant-{i % 11}".encode(), request_bytes(i, f"tenant-{i % 11}", T0_MS + i * 100))
        for i in range(n)
    ]
    asyncio.run(produce(settings, lay.requests, items))
    a = start_worker(settings, tmp_path / "a.log")
    try:
        _wait_decided(settings, lay, 800)
    finally:
        a.kill()  # mid-stream: batches in flight, offsets and checkpoints partly written
    b = start_worker(settings, tmp_path / "b.log")
    try:
        out = read_outputs(settings, n)
    finally:
        b.stop()
    records = [orjson.loads(m.value) for m in out[lay.decisions]]
    ids = [d["request_id"] for d in records]
    assert len(set(ids)) == n, b.log()[-2000:]
    assert len(ids) == n, "a request was decided twice"
    assert check_chain(records) == []  # log order: tenant chains and pooled mu scopes
    for t in {d["tenant"] for d in records}:
        seqs = sorted(d["tenant_seq"] for d in records if d["tenant"] == t)
        assert seqs == list(range(1, len(seqs) + 1))
    # Dispatch is at-least-once but never contradicts the decision.
    chosen = {d["request_id"]: d["model"] for d in records}
    seen: dict[str, set[bytes]] = {}
    for model, topic in lay.dispatch.items():
        for m in out[topic]:
            rid = m.key.decode()
            assert chosen[rid] == model
            seen.setdefault(rid, set()).add(m.value)
    assert set(seen) == set(chosen)
    assert all(len(v) == 1 for v in seen.values())
