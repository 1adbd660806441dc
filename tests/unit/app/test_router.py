"""Router without a broker: decisions, dead letters, dedupe (per tenant), re-dispatch of recovered
decisions, a core failure isolated to its request."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from support.fake_producer import FakeProducer
from support.worker import SMALL_CATALOG, request_bytes, request_message

from streams.app.dedupe import DedupeIndex, dedupe_key
from streams.app.router import RawMessage, Router, tenant_map
from streams.app.sink import BatchSink
from streams.config import Settings
from streams.core.catalog import Catalog
from streams.core.context import RoutingContext
from streams.core.policies import get_policy
from streams.core.policy_config import PolicyConfig
from streams.kafka.topics import TopicLayout
from streams.schema.decision_mac import DecisionSigner, split_mac, verify

T0_MS = 1_672_531_200_000
KEY = b"router-test-key-0123456789"


@pytest.fixture
def router_setup() -> tuple[Router, RoutingContext, TopicLayout]:
    catalog = Catalog.from_dict(SMALL_CATALOG)
    layout = TopicLayout.from_settings(Settings(), catalog.model_names)
    store_t: dict[bytes, bytes] = {}
    store_d: dict[bytes, bytes] = {}
    router = Router(
        catalog,
        layout,
        get_policy("gar-pd"),
        tenant_map(store_t, "tcl"),
        DedupeIndex(store_d, "dcl", 3_600_000, 1000),
        signer=DecisionSigner("k1", KEY),
    )
    ctx = RoutingContext.build(catalog, PolicyConfig())
    return router, ctx, layout


def test_router_batch_decides_dead_letters_and_dedupes(
    router_setup: tuple[Router, RoutingContext, TopicLayout],
) -> None:
    router, ctx, layout = router_setup
    batch = [request_message(i, request_bytes(i, "t", T0_MS + i)) for i in range(5)]
    batch.append(request_message(5, b"{oops"))
    batch.append(request_message(6, request_bytes(2, "t", T0_MS + 2)))  # same id again in the batch
    batch.append(
        request_message(7, request_bytes(7, "t", T0_MS, deny_models=["small-8b", "large-70b"]))
    )
    prod = FakeProducer()
    first, second = BatchSink(prod), BatchSink(prod)
    stats = router.route_batch(ctx, batch, first, second)
    assert (stats.decided, stats.dead_lettered, stats.duplicates) == (5, 2, 1)
    asyncio.run(first.flush())
    decisions = [orjson.loads(v) for _, _, v in prod.records(layout.decisions)]
    assert [d["request_id"] for d in decisions] == [f"req-{i:06d}" for i in range(5)]
    assert [d["tenant_seq"] for d in decisions] == [1, 2, 3, 4, 5]
    assert [d["request_offset"] for d in decisions] == [0, 1, 2, 3, 4]
    dead = [orjson.loads(v) for _, _, v in prod.records(layout.dead_letter)]
    assert [(d["stage"], d["reason"]) for d in dead] == [
        ("decode", "invalid_json"),
        ("route", "no_candidate"),
    ]
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
    batch = [request_message(i, request_bytes(i, "t", T0_MS + i)) for i in range(3)]
    router.route_batch(ctx, batch, first, BatchSink(prod))
    asyncio.run(first.flush())
    records = [orjson.loads(v) for _, _, v in prod.records(layout.decisions)]
    logged = {d["request_id"]: d for d in records}
    # A second router over empty state (the checkpoint was lost) finds them in the log tail.
    fresh = Router(
        router.catalog,
        layout,
        router.policy,
        tenant_map({}, "tcl"),
        DedupeIndex({}, "dcl", 3_600_000, 1000),
        signer=DecisionSigner("k1", KEY),
    )
    cfg = ctx.config
    found = {dedupe_key(d["tenant"], d["request_id"]): d for d in records}  # as the scan keys
    fresh.absorb_recovered(found, 0, cfg.bucket_ms, cfg.budget_buckets)
    st = fresh.tenants.get("t")
    assert st is not None and st.seq == 3
    assert st.lam == logged["req-000002"]["duals_after"][0]
    assert st.chain == logged["req-000002"]["mac"]  # the chain continues after the crash
    prod2 = FakeProducer()
    out1, out2 = BatchSink(prod2), BatchSink(prod2)
    stats = fresh.route_batch(
        ctx, [*batch, request_message(3, request_bytes(3, "t", T0_MS + 3))], out1, out2
    )
    assert (stats.redispatched, stats.decided) == (3, 1)
    asyncio.run(out1.flush())
    asyncio.run(out2.flush())
    new = [orjson.loads(v) for _, _, v in prod2.records(layout.decisions)]
    assert [(d["request_id"], d["tenant_seq"]) for d in new] == [("req-000003", 4)]
    assert new[0]["duals_before"] == logged["req-000002"]["duals_after"]
    body, mac = split_mac(prod2.records(layout.decisions)[0][2])  # type: ignore[misc]
    assert mac is not None and verify({"k1": KEY}, body, mac, logged["req-000002"]["mac"]) is None
    redispatched = {
        k.decode(): orjson.loads(v)
        for t in layout.dispatch.values()
        for _, k, v in prod2.records(t)
    }
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
    batch = [request_message(i, request_bytes(i, "t", T0_MS + i)) for i in range(5)]
    stats = router.route_batch(ctx, batch, first, second)
    assert (stats.decided, stats.dead_lettered) == (4, 1)
    asyncio.run(first.flush())
    decisions = [orjson.loads(v) for _, _, v in prod.records(layout.decisions)]
    assert [d["tenant_seq"] for d in decisions] == [1, 2, 3, 4]  # state threads past the hole
    (dead,) = [orjson.loads(v) for _, _, v in prod.records(layout.dead_letter)]
    assert (dead["stage"], dead["reason"], dead["request_id"]) == (
        "internal",
        "internal_error",
        "req-000002",
    )
    assert dead["original_size_bytes"] == len(batch[2].value or b"")


def test_dedupe_is_per_tenant_another_tenants_reused_id_is_decided(
    router_setup: tuple[Router, RoutingContext, TopicLayout],
) -> None:
    router, ctx, layout = router_setup
    prod = FakeProducer()
    first = BatchSink(prod)
    batch = [
        request_message(0, request_bytes(1, "acme", T0_MS)),
        request_message(1, request_bytes(1, "globex", T0_MS)),
        request_message(2, request_bytes(1, "acme", T0_MS)),
    ]
    stats = router.route_batch(ctx, batch, first, BatchSink(prod))
    assert (stats.decided, stats.duplicates) == (2, 1)
    asyncio.run(first.flush())
    tenants = sorted(orjson.loads(v)["tenant"] for _, _, v in prod.records(layout.decisions))
    assert tenants == ["acme", "globex"]


def test_another_tenants_clock_does_not_undo_deduplication(
    router_setup: tuple[Router, RoutingContext, TopicLayout],
) -> None:
    """Ids are remembered for the window by arrival (log-append) time: one tenant's request
    stamped two hours ahead must not evict another tenant's ids, before or after a reload."""
    router, ctx, layout = router_setup  # window: 1 h

    def msg(offset: int, arrival_ms: int, tenant: str, i: int, ts_ms: int) -> RawMessage:
        return RawMessage(
            "gar.requests", 0, offset, arrival_ms, tenant.encode(), request_bytes(i, tenant, ts_ms)
        )

    def route(batch: list[RawMessage], r: Router = router) -> tuple[int, int]:
        prod = FakeProducer()
        stats = r.route_batch(ctx, batch, BatchSink(prod), BatchSink(prod))
        r.dedupe.checkpoint(BatchSink(prod))
        return stats.decided, stats.duplicates

    victim = [msg(i, T0_MS + i, "victim", i, T0_MS + i) for i in range(5)]
    assert route(victim) == (5, 0)
    ahead = msg(5, T0_MS + 1_000, "mallory", 99, T0_MS + 2 * 3_600_000)
    assert route([ahead]) == (1, 0)
    retries = [
        m._replace(offset=6 + i, timestamp_ms=T0_MS + 2_000 + i) for i, m in enumerate(victim)
    ]
    assert route(retries) == (0, 5)
    # After a restart (a fresh index over the same store) too.
    fresh = Router(
        router.catalog,
        layout,
        router.policy,
        router.tenants,
        DedupeIndex(router.dedupe._store, "dcl", 3_600_000, 1000),
    )
    assert route([m._replace(offset=20 + m.offset) for m in retries], fresh) == (0, 5)
    # The window is arrival time: once the partition's arrivals are past it, a copy is new.
    assert route([msg(30, T0_MS + 3_700_000, "other", 1, T0_MS)], fresh) == (1, 0)
    late = [m._replace(offset=40 + m.offset, timestamp_ms=T0_MS + 3_700_001) for m in victim]
    assert route(late, fresh) == (5, 0)


def test_a_request_keyed_off_its_tenant_is_dead_lettered_not_decided(
    router_setup: tuple[Router, RoutingContext, TopicLayout],
) -> None:
    router, ctx, layout = router_setup
    prod = FakeProducer()
    first = BatchSink(prod)
    good = request_bytes(1, "acme", T0_MS)
    batch = [
        RawMessage("gar.requests", 0, 0, None, None, good),
        RawMessage("gar.requests", 0, 1, None, b"globex", request_bytes(2, "acme", T0_MS)),
        RawMessage("gar.requests", 0, 2, None, b"\xff\x00", request_bytes(3, "acme", T0_MS)),
        RawMessage("gar.requests", 0, 3, None, b"acme", good),
    ]
    stats = router.route_batch(ctx, batch, first, BatchSink(prod))
    assert (stats.decided, stats.dead_lettered, stats.duplicates) == (1, 3, 0)
    asyncio.run(first.flush())
    dead = [orjson.loads(v) for _, _, v in prod.records(layout.dead_letter)]
    assert {d["reason"] for d in dead} == {"key_not_tenant"}
    assert [d["request_id"] for d in dead] == ["req-000001", "req-000002", "req-000003"]
    assert "no key" in dead[0]["message"] and "globex" in dead[1]["message"]


def test_the_feedback_position_travels_with_state_and_decisions() -> None:
    """A tenant's next completions offset not yet folded goes into its changelog record and its
    decision records; a restart reads it back from either (feedback exactly once)."""
    catalog = Catalog.from_dict(SMALL_CATALOG)
    layout = TopicLayout.from_settings(Settings(), catalog.model_names)
    ctx = RoutingContext.build(catalog, PolicyConfig())
    store: dict[bytes, bytes] = {}
    positions: dict[str, int] = {"t": 42}
    tenants = tenant_map(store, "tcl", positions)
    dedupe = DedupeIndex({}, "dcl", 3_600_000, 1000)
    router = Router(catalog, layout, get_policy("gar-pd"), tenants, dedupe, None, positions)
    prod = FakeProducer()
    first = BatchSink(prod)
    router.route_batch(
        ctx, [request_message(0, request_bytes(0, "t", T0_MS))], first, BatchSink(prod)
    )
    asyncio.run(first.flush())
    [decision] = [orjson.loads(v) for _, _, v in prod.records(layout.decisions)]
    assert decision["completions_next_offset"] == 42
    tenants.checkpoint(BatchSink(prod))
    reread: dict[str, int] = {}
    assert tenant_map(store, "tcl", reread).get("t") is not None and reread == {"t": 42}
    # A decision recovered from the log tail (its checkpoint lost) restores a newer position.
    fresh = Router(
        catalog, layout, router.policy, tenant_map({}, "tcl"), DedupeIndex({}, "d", 1, 9)
    )
    decision["completions_next_offset"] = 57
    cfg = ctx.config
    fresh.absorb_recovered(
        {dedupe_key("t", decision["request_id"]): decision}, 0, cfg.bucket_ms, cfg.budget_buckets
    )
    assert fresh.feedback_next == {"t": 57}
