"""Unit tests of the app's shell pieces without a broker (fake producer only for the sink)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import orjson
import pytest

from app.helpers import SMALL_CATALOG, request_bytes
from streams.app.checkpoint import CheckpointedMap, decode_json, encode_json
from streams.app.dedupe import DedupeIndex, dedupe_key
from streams.app.router import RawMessage, Router, tenant_map
from streams.app.sink import BatchSink
from streams.app.topics import TopicLayout, dispatch_topic_name, topic_specs
from streams.config import Settings
from streams.core.catalog import Catalog
from streams.core.context import RoutingContext
from streams.core.policies.base import get_policy
from streams.core.policy_config import PolicyConfig

T0_MS = 1_672_531_200_000


class FakeBatch:
    def __init__(self, max_records: int) -> None:
        self.records: list[tuple[Any, Any, Any]] = []
        self.max_records = max_records

    def append(self, *, key: Any, value: Any, timestamp: Any) -> object | None:
        if len(self.records) >= self.max_records:
            return None
        self.records.append((key, value, timestamp))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class FakeMeta:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset


class FakeProducer:
    """Records what the sink sends; offsets count per topic-partition like a broker."""

    def __init__(self, max_records: int = 1000) -> None:
        self.max_records = max_records
        self.sent: list[tuple[str, int, list[tuple[Any, Any, Any]]]] = []
        self.ends: dict[tuple[str, int], int] = {}

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.max_records)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        self.sent.append((topic, partition, batch.records))
        base = self.ends.get((topic, partition), 0)
        self.ends[(topic, partition)] = base + len(batch.records)
        fut: asyncio.Future[FakeMeta] = asyncio.get_running_loop().create_future()
        fut.set_result(FakeMeta(topic, partition, base))
        return fut

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    def records(self, topic: str) -> list[tuple[int, Any, Any]]:
        return [(p, k, v) for t, p, recs in self.sent if t == topic for k, v, _ in recs]


class YieldingProducer(FakeProducer):
    """Suspends in every ``send_batch``, as aiokafka does while a partition's previous batch
    waits to be drained."""

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        await asyncio.sleep(0)
        return await super().send_batch(batch, topic, partition=partition)


def _overlapping_flushes(order: asyncio.Lock | None) -> list[bytes]:
    """Two batches' decisions (4 producer batches each) flushed concurrently, the first
    started first, as the pipelined hot path does; returns the partition's log order."""
    prod = YieldingProducer(max_records=2)

    async def run() -> None:
        first, second = BatchSink(prod, order), BatchSink(prod, order)
        for i in range(8):
            first.add("decisions", b"t", b"a%d" % i, partition=0)
            second.add("decisions", b"t", b"b%d" % i, partition=0)
        started = [asyncio.ensure_future(first.flush()), asyncio.ensure_future(second.flush())]
        await asyncio.gather(*started)

    asyncio.run(run())
    return [v for _, _, v in prod.records("decisions")]


def test_overlapping_flushes_sharing_an_order_lock_append_in_start_order() -> None:
    log = _overlapping_flushes(asyncio.Lock())
    assert log == [b"a%d" % i for i in range(8)] + [b"b%d" % i for i in range(8)]
    # Without the lock the two batches interleave on the partition (what a crash recovery's
    # tail scan saw: a tenant's later decisions logged before its earlier ones).
    assert _overlapping_flushes(None) != log


def test_sink_groups_splits_partitions_by_key_and_reports_next_offsets() -> None:
    prod = FakeProducer(max_records=3)
    sink = BatchSink(prod)
    for i in range(7):
        sink.add("a", b"k", b"%d" % i, partition=1)
    for i in range(4):
        sink.add("b", b"req-%d" % i, b"v")
    ends = asyncio.run(sink.flush())
    assert [len(r) for t, p, r in prod.sent if t == "a"] == [3, 3, 1]  # split when full
    assert [v for _, _, v in prod.records("a")] == [b"%d" % i for i in range(7)]  # order kept
    assert ends[("a", 1)] == 7
    # Keyed records land where Kafka's default partitioner puts them (stable per key).
    again = BatchSink(prod)
    for i in range(4):
        again.add("b", b"req-%d" % i, b"w")
    asyncio.run(again.flush())
    by_key: dict[Any, set[int]] = {}
    for p, k, _ in prod.records("b"):
        by_key.setdefault(k, set()).add(p)
    assert all(len(ps) == 1 for ps in by_key.values())
    assert asyncio.run(BatchSink(prod).flush()) == {}


def test_dedupe_index_checkpoints_evicts_and_reloads() -> None:
    store: dict[bytes, bytes] = {}
    idx = DedupeIndex(store, "cl", window_ms=10_000, max_per_partition=3)
    for i in range(5):
        idx.add(f"r{i}", 0, T0_MS + i * 1000)
    idx.add("q0", 1, T0_MS)
    idx.set_watermark(0, 42)
    prod = FakeProducer()
    sink = BatchSink(prod)
    assert idx.checkpoint(sink) == 3  # one record per partition + the watermark
    asyncio.run(sink.flush())
    written = prod.records("cl")
    # One record per partition holds its new ids (event time and key), nothing per id.
    assert (0, b"b:0:0", orjson.dumps([[T0_MS + i * 1000 for i in range(5)],
                                       [f"r{i}" for i in range(5)]])) in written
    assert (1, b"b:1:0", orjson.dumps([[T0_MS], ["q0"]])) in written
    assert (0, b"w:0", b"42") in written
    assert not idx.seen("r0") and not idx.seen("r1") and idx.seen("r4")  # max 3 kept
    assert [v for _, _, v in written if v is None] == []  # r2..r4 keep the record alive
    # A fresh index over the same (recovered) store: the record comes back whole (it may
    # remember more than the bounds until its next checkpoint, never less) and the watermark.
    fresh = DedupeIndex(store, "cl", window_ms=10_000, max_per_partition=3)
    assert fresh.seen("r1") and fresh.seen("r4") and fresh.watermark(0) == 42
    fresh.checkpoint(BatchSink(prod))
    assert not fresh.seen("r1") and fresh.seen("r2")
    # Earlier changelogs: one r:<key> entry per id (CSV or JSON value), each its own record.
    store[b"r:legacy"] = orjson.dumps([0, T0_MS + 4000])
    fresh = DedupeIndex(store, "cl", window_ms=10_000, max_per_partition=4)
    assert fresh.seen("legacy")
    # Far ahead in event time: the window evicts the rest, and every record whose ids are all
    # gone is tombstoned (partition 1's too: its only id is older than the window).
    prod2 = FakeProducer()
    fresh.add("r9", 0, T0_MS + 60_000)
    fresh.add("q9", 1, T0_MS + 60_000)
    sink2 = BatchSink(prod2)
    fresh.checkpoint(sink2)
    asyncio.run(sink2.flush())
    tombstones = {k for _, k, v in prod2.records("cl") if v is None}
    assert tombstones == {b"b:0:0", b"b:1:0", b"r:legacy"}
    assert sorted(k for k in store if k[:2] in (b"b:", b"r:")) == [b"b:0:1", b"b:1:1"]
    assert fresh.seen("r9") and fresh.seen("q9") and not fresh.seen("r4")


def test_dedupe_ids_added_before_a_reset_are_still_seen_and_written() -> None:
    store: dict[bytes, bytes] = {}
    idx = DedupeIndex(store, "cl", window_ms=10_000, max_per_partition=100)
    idx.add("a", 0, T0_MS)
    idx.reset()  # a rebalance between a batch and its checkpoint
    assert idx.seen("a")
    prod = FakeProducer()
    sink = BatchSink(prod)
    idx.checkpoint(sink)
    asyncio.run(sink.flush())
    assert [k for _, k, _ in prod.records("cl")] == [b"b:0:0"]
    assert DedupeIndex(store, "cl", 10_000, 100).seen("a")


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


def test_topic_specs_copartition_tenant_state_and_sanitise_dispatch_names() -> None:
    s = Settings(topics={"prefix": "p.", "partitions": 6}, app_id="app")
    specs = {t.name: t for t in topic_specs(s, ["meta/llama-2-70b", "small"])}
    for name in ("p.requests", "p.completions", "p.decisions", "app-tenant_state-changelog",
                 "app-dedupe-changelog"):
        assert specs[name].partitions == 6
    assert specs["app-intensity-changelog"].partitions == 1
    assert specs["p.policy"].topic_configs()["cleanup.policy"] == "compact"
    assert specs["p.requests"].topic_configs()["cleanup.policy"] == "delete"
    assert dispatch_topic_name(s, "meta/llama-2-70b") == "p.dispatch.meta_llama-2-70b"
    assert specs["p.dispatch.small"].partitions == 6  # default: topics.partitions


def test_dispatch_partitions_are_sized_apart_from_the_router() -> None:
    s = Settings(topics={"prefix": "p.", "partitions": 6, "dispatch_partitions": 2})
    specs = {t.name: t for t in topic_specs(s, ["small"])}
    assert specs["p.dispatch.small"].partitions == 2
    assert specs["p.requests"].partitions == specs["p.decisions"].partitions == 6
    with pytest.raises(ValueError):
        Settings(topics={"dispatch_partitions": 0})


@pytest.fixture
def router_setup() -> tuple[Router, RoutingContext, TopicLayout]:
    catalog = Catalog.from_dict(SMALL_CATALOG)
    layout = TopicLayout.from_settings(Settings(), catalog.model_names)
    store_t: dict[bytes, bytes] = {}
    store_d: dict[bytes, bytes] = {}
    router = Router(catalog, layout, get_policy("gar-pd"), tenant_map(store_t, "tcl"),
                    DedupeIndex(store_d, "dcl", 3_600_000, 1000))
    ctx = RoutingContext.build(catalog, PolicyConfig())
    return router, ctx, layout


def _msg(offset: int, value: bytes, partition: int = 0) -> RawMessage:
    return RawMessage("gar.requests", partition, offset, None, b"t", value)


def test_router_batch_decides_dead_letters_and_dedupes(
    router_setup: tuple[Router, RoutingContext, TopicLayout],
) -> None:
    router, ctx, layout = router_setup
    batch = [_msg(i, request_bytes(i, "t", T0_MS + i)) for i in range(5)]
    batch.append(_msg(5, b"{oops"))
    batch.append(_msg(6, request_bytes(2, "t", T0_MS + 2)))  # same id again in the batch
    batch.append(_msg(7, request_bytes(7, "t", T0_MS, deny_models=["small-8b", "large-70b"])))
    prod = FakeProducer()
    first, second = BatchSink(prod), BatchSink(prod)
    stats = router.route_batch(ctx, batch, first, second)
    assert (stats.decided, stats.dead_lettered, stats.duplicates) == (5, 2, 1)
    asyncio.run(first.flush())
    decisions = [orjson.loads(v) for _, _, v in prod.records(layout.decisions)]
    assert [d["request_id"] for d in decisions] == [f"req-{i:06d}" for i in range(5)]
    assert [d["tenant_seq"] for d in decisions] == [1, 2, 3, 4, 5]
    assert [d["request_source"]["offset"] for d in decisions] == [0, 1, 2, 3, 4]
    dead = [orjson.loads(v) for _, _, v in prod.records(layout.dead_letter)]
    assert [(d["stage"], d["reason"]) for d in dead] == [
        ("decode", "invalid_json"), ("route", "no_candidate")]
    asyncio.run(second.flush())
    assert sum(len(prod.records(t)) for t in layout.dispatch.values()) == 5
    # Re-delivery of the whole batch: nothing new.
    again = router.route_batch(ctx, batch, BatchSink(prod), BatchSink(prod))
    assert (again.decided, again.duplicates, again.dead_lettered) == (0, 7, 1)  # bad bytes again


def test_router_recovered_decisions_are_redispatched_not_redecided(
    router_setup: tuple[Router, RoutingContext, TopicLayout],
) -> None:
    router, ctx, layout = router_setup
    prod = FakeProducer()
    first = BatchSink(prod)
    batch = [_msg(i, request_bytes(i, "t", T0_MS + i)) for i in range(3)]
    router.route_batch(ctx, batch, first, BatchSink(prod))
    asyncio.run(first.flush())
    records = [orjson.loads(v) for _, _, v in prod.records(layout.decisions)]
    logged = {d["request_id"]: d for d in records}
    # A second router over empty state (the checkpoint was lost) finds them in the log tail.
    fresh = Router(router.catalog, layout, router.policy, tenant_map({}, "tcl"),
                   DedupeIndex({}, "dcl", 3_600_000, 1000))
    cfg = ctx.config
    found = {dedupe_key(d["tenant"], d["request_id"]): d for d in records}  # as the scan keys
    fresh.absorb_recovered(found, 0, cfg.bucket_ms, cfg.budget_buckets)
    st = fresh.tenants.get("t")
    assert st is not None and st.seq == 3
    assert st.lam == logged["req-000002"]["duals_after"]["lambda"]
    prod2 = FakeProducer()
    out1, out2 = BatchSink(prod2), BatchSink(prod2)
    stats = fresh.route_batch(ctx, [*batch, _msg(3, request_bytes(3, "t", T0_MS + 3))],
                              out1, out2)
    assert (stats.redispatched, stats.decided) == (3, 1)
    asyncio.run(out1.flush())
    asyncio.run(out2.flush())
    new = [orjson.loads(v) for _, _, v in prod2.records(layout.decisions)]
    assert [(d["request_id"], d["tenant_seq"]) for d in new] == [("req-000003", 4)]
    assert new[0]["duals_before"] == logged["req-000002"]["duals_after"]
    redispatched = {k.decode(): orjson.loads(v) for t in layout.dispatch.values()
                    for _, k, v in prod2.records(t)}
    for rid, d in logged.items():
        assert redispatched[rid]["model"] == d["model"]


class _FlakyPolicy:
    """Delegates to gar-pd but fails on one request id (stands in for a core bug)."""

    name = "gar-pd"

    def __init__(self, bad_id: str) -> None:
        self.inner = get_policy("gar-pd")
        self.bad_id = bad_id

    def decide_batch(self, ctx: Any, states: Any, requests: Any) -> Any:
        if any(r.request_id == self.bad_id for r in requests):
            raise ZeroDivisionError("boom")
        return self.inner.decide_batch(ctx, states, requests)


def test_router_isolates_a_request_the_core_cannot_decide(
    router_setup: tuple[Router, RoutingContext, TopicLayout],
) -> None:
    router, ctx, layout = router_setup
    router.policy = _FlakyPolicy("req-000002")
    prod = FakeProducer()
    first, second = BatchSink(prod), BatchSink(prod)
    batch = [_msg(i, request_bytes(i, "t", T0_MS + i)) for i in range(5)]
    stats = router.route_batch(ctx, batch, first, second)
    assert (stats.decided, stats.dead_lettered) == (4, 1)
    asyncio.run(first.flush())
    decisions = [orjson.loads(v) for _, _, v in prod.records(layout.decisions)]
    assert [d["tenant_seq"] for d in decisions] == [1, 2, 3, 4]  # state threads past the hole
    (dead,) = [orjson.loads(v) for _, _, v in prod.records(layout.dead_letter)]
    assert (dead["stage"], dead["reason"], dead["request_id"]) == (
        "internal", "internal_error", "req-000002")
    assert dead["original_size_bytes"] == len(batch[2].value or b"")


def test_views_skip_unusable_replicated_state_instead_of_crashing() -> None:
    from streams.app.views import GLOBAL_SCOPE, Views
    from streams.core.estimators import EstimatorState

    catalog = Catalog.from_dict(SMALL_CATALOG)
    other = Catalog.from_dict({**SMALL_CATALOG, "version": "older.1",
                               "models": SMALL_CATALOG["models"][:1]})
    old = EstimatorState(other)
    intensity = {b"GB": b"not json", b"US-MIDA-PJM": orjson.dumps(
        [{"zone": "US-MIDA-PJM", "intensity_g_per_kwh": 400.0, "ts_ms": T0_MS}])}
    policy = {GLOBAL_SCOPE: orjson.dumps({"config": {"mode": "nonsense"}})}
    estimators = {b"p0": orjson.dumps(old.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)}
    views = Views(catalog, PolicyConfig(version="default"), "gar-pd", intensity, policy,
                  estimators)
    ctx = views.context(refresh_estimators=True)
    assert ctx.config.version == "default"
    assert views.intensity.zones == ("US-MIDA-PJM",)
    assert ctx.snapshot.seq == 0
    assert views.estimator_for(0).catalog is catalog  # fresh, not the incompatible snapshot


def test_dedupe_is_per_tenant_another_tenants_reused_id_is_decided(
    router_setup: tuple[Router, RoutingContext, TopicLayout],
) -> None:
    router, ctx, layout = router_setup
    prod = FakeProducer()
    first = BatchSink(prod)
    batch = [_msg(0, request_bytes(1, "acme", T0_MS)), _msg(1, request_bytes(1, "globex", T0_MS)),
             _msg(2, request_bytes(1, "acme", T0_MS))]
    stats = router.route_batch(ctx, batch, first, BatchSink(prod))
    assert (stats.decided, stats.duplicates) == (2, 1)
    asyncio.run(first.flush())
    tenants = sorted(orjson.loads(v)["tenant"] for _, _, v in prod.records(layout.decisions))
    assert tenants == ["acme", "globex"]


def test_worker_producer_is_idempotent() -> None:
    """A produce request retried after a lost ack must not append a decision twice: the
    worker's Faust producer builds an aiokafka producer with idempotence (and acks=all)."""
    import asyncio

    from streams.app.app import create_app
    from streams.app.kafka import IdempotentProducer
    from streams.config import Settings

    async def build() -> tuple[object, dict[str, object], bool]:
        producer = create_app(Settings()).app.producer
        client = producer._new_producer()
        try:
            return producer, dict(producer._settings_extra()), client._txn_manager is not None
        finally:
            await client.stop()

    producer, extra, has_txn_manager = asyncio.run(build())
    assert isinstance(producer, IdempotentProducer)
    assert extra == {"acks": "all", "enable_idempotence": True}
    assert has_txn_manager  # aiokafka keeps producer id + sequences only when idempotent


@pytest.mark.parametrize("warmup", [False, True])
def test_absorbed_decisions_leave_the_state_an_uninterrupted_run_has(warmup: bool) -> None:
    """Crash recovery folds the decisions logged after the last checkpoint into the checkpointed
    tenant state; the result must equal the state of the router that made them, including
    gar-pd's warm-up counts (opt-in) and consumed feedback surprise."""
    catalog = Catalog.from_dict(SMALL_CATALOG)
    layout = TopicLayout.from_settings(Settings(), catalog.model_names)
    cfg = PolicyConfig(mu_warmup_gain=4.0, mu_warmup_n=10) if warmup else PolicyConfig()
    ctx = RoutingContext.build(catalog, cfg)
    store: dict[bytes, bytes] = {}
    live = Router(catalog, layout, get_policy("gar-pd"), tenant_map(store, "tcl"),
                  DedupeIndex({}, "dcl", 3_600_000, 1000))
    prod = FakeProducer()
    first = BatchSink(prod)
    live.route_batch(ctx, [_msg(i, request_bytes(i, "t", T0_MS + i)) for i in range(2)],
                     first, BatchSink(prod))
    live.tenants.checkpoint(BatchSink(FakeProducer()))  # the last durable checkpoint
    checkpointed = dict(store)
    live.tenants.put("t", replace(live.tenants.get("t"), surprise={"gsm8k": 0.25}), 0)
    live.route_batch(ctx, [_msg(i, request_bytes(i, "t", T0_MS + i)) for i in range(2, 6)],
                     first, BatchSink(prod))
    asyncio.run(first.flush())
    records = [orjson.loads(v) for _, _, v in prod.records(layout.decisions)]
    # A restarted router: the checkpoint (with the surprise the completions agent had added
    # after it, as a feedback fold would checkpoint it) plus the decisions after it.
    restart_store = dict(checkpointed)
    restarted = Router(catalog, layout, live.policy, tenant_map(restart_store, "tcl"),
                       DedupeIndex({}, "dcl", 3_600_000, 1000))
    base = restarted.tenants.get("t")
    assert base is not None and base.seq == 2
    restarted.tenants.put("t", replace(base, surprise={"gsm8k": 0.25}), 0)
    found = {dedupe_key(d["tenant"], d["request_id"]): d for d in records[2:]}
    restarted.absorb_recovered(found, 0, cfg.bucket_ms, cfg.budget_buckets, cfg)
    want, got = live.tenants.get("t"), restarted.tenants.get("t")
    assert want is not None and got is not None
    assert got.seq == want.seq == 6
    assert dict(got.warmup) == dict(want.warmup)
    assert dict(got.surprise) == dict(want.surprise)
    assert dict(got.mu) == dict(want.mu)
    assert (got.lam, got.nu) == (want.lam, want.nu)
    if warmup:
        assert want.warmup  # the case exercises a warm-up still running


def test_demo_dataset_table_scores_each_dataset_against_its_floor() -> None:
    from rich.console import Console

    from streams.app.demo import dataset_table

    decs = [
        {"dataset": "gsm8k", "floor": 0.8, "reason": "optimal"},
        {"dataset": "gsm8k", "floor": 0.8, "reason": "infeasible_fallback"},
        {"dataset": "mbpp", "floor": 0.5, "reason": "optimal"},
    ]
    comp = [{"dataset": "gsm8k", "correct": True}, {"dataset": "gsm8k", "correct": False},
            {"dataset": "mbpp", "correct": None}]
    console = Console(width=200, record=True)
    console.print(dataset_table(decs, comp))
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in console.export_text().splitlines()
            if line.startswith("│") and ("gsm8k" in line or "mbpp" in line)}
    assert rows["gsm8k"] == ["2", "0.800", "0.500", "-30.0", "1"]
    assert rows["mbpp"] == ["1", "0.500", "n/a", "n/a", "0"]
