"""Router and completion handler with pooled accuracy duals (``mu_pooled``), without a broker:
each requests partition is a scope whose state is decided with under ``SCOPE_BOOK``, stored
and checkpointed with the partition, restored by the recovery scan, and fed correctness
feedback from the completions of its partition exactly once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import orjson
import pytest
from support.fake_producer import FakeProducer
from support.handlers import SideInputWorld, message
from support.worker import SMALL_CATALOG, request_bytes

from streams.app.completion_handler import CompletionHandler, EstimatorSnapshots
from streams.app.dedupe import DedupeIndex, dedupe_key
from streams.app.router import (
    FEEDBACK_NEXT,
    SCOPE_FEEDBACK_NEXT,
    RawMessage,
    Router,
    group_by_partition,
    tenant_map,
)
from streams.app.scopes import pooled_in, scope_for_core, scope_key, store_scope
from streams.app.sink import BatchSink
from streams.app.views import GLOBAL_SCOPE
from streams.config import Settings
from streams.core.catalog import Catalog
from streams.core.context import RoutingContext
from streams.core.inputs import Request
from streams.core.policies import get_policy
from streams.core.policy_config import PRESETS, PolicyConfig
from streams.core.tenant import SCOPE_BOOK, TenantState
from streams.kafka.topics import TopicLayout

T0_MS = 1_672_531_200_000
DATASETS = ("gsm8k", "other")  # "other": not in the catalog, priced as its "*" row
# Tenants 0-5: tenant i on partition i % 2 (the tests place them, no partitioner involved).
TENANTS = [f"tenant-{i}" for i in range(6)]


def pooled_config(**changes: Any) -> PolicyConfig:
    return PolicyConfig(
        version="pooled-test",
        mu_pooled=True,
        feedback_weight=0.5,
        mu_warmup_gain=2.0,
        mu_warmup_n=5,
        adaptive_floor_alpha=None,
        default_floor=0.8,
        **changes,
    )


def msg(i: int, offset: int | None = None) -> RawMessage:
    """Request ``i`` of tenant ``i % 6`` on partition ``i % 2``, dataset alternating."""
    tenant = TENANTS[i % len(TENANTS)]
    value = request_bytes(i, tenant, T0_MS + 1000 * i, dataset=DATASETS[(i // 2) % 2])
    return RawMessage(
        "gar.requests", i % 2, i if offset is None else offset, None, tenant.encode(), value
    )


def part(record: dict[str, Any]) -> int:
    """The requests partition of a record of ``msg(i)``."""
    return int(str(record["request_id"]).removeprefix("req-")) % 2


class Run:
    """A router over its own stores, with the decision records it wrote."""

    def __init__(self, cfg: PolicyConfig, store: dict[bytes, bytes] | None = None) -> None:
        self.catalog = Catalog.from_dict(SMALL_CATALOG)
        self.layout = TopicLayout.from_settings(Settings(), self.catalog.model_names)
        self.ctx = RoutingContext.build(self.catalog, cfg)
        self.store: dict[bytes, bytes] = {} if store is None else store
        self.positions: dict[str, int] = {}
        self.router = Router(
            self.catalog,
            self.layout,
            get_policy("gar-pd"),
            tenant_map(self.store, "tcl", self.positions),
            DedupeIndex({}, "dcl", 3_600_000, 1000),
            feedback_next=self.positions,
        )
        self.records: list[dict[str, Any]] = []
        self.raw: list[bytes] = []

    def route(self, batch: list[RawMessage]) -> None:
        prod = FakeProducer()
        first = BatchSink(prod)
        self.router.route_batch(self.ctx, batch, first, BatchSink(prod))
        asyncio.run(first.flush())
        for _, _, v in prod.records(self.layout.decisions):
            self.raw.append(v)
            self.records.append(orjson.loads(v))

    def checkpoint(self) -> list[bytes]:
        prod = FakeProducer()
        sink = BatchSink(prod)
        self.router.tenants.checkpoint(sink)
        asyncio.run(sink.flush())
        return [k for _, k, _ in prod.records("tcl")]


def test_group_by_partition_keeps_log_order_within_each_partition() -> None:
    todo: list[tuple[Request, RawMessage]] = [
        (object(), RawMessage("r", p, off, None, b"t", b""))
        for p, off in [(2, 10), (0, 5), (2, 11), (1, 7), (0, 6), (2, 12)]
    ]  # type: ignore[misc]
    groups = group_by_partition(todo)
    assert [p for p, _ in groups] == [0, 1, 2]
    assert [[m.offset for _, m in g] for _, g in groups] == [[5, 6], [7], [10, 11, 12]]
    assert group_by_partition([]) == []


def test_each_partition_is_a_scope_with_its_own_pooled_mu() -> None:
    run = Run(pooled_config())
    run.route([msg(i) for i in range(24)])
    recs = run.records
    assert len(recs) == 24
    for p in (0, 1):
        mine = [r for r in recs if part(r) == p]
        assert {r["mu_scope"] for r in mine} == {f"p{p}"}
        assert [r["mu_seq"] for r in mine] == list(range(1, 13))
        assert len({r["tenant"] for r in mine}) == 3  # three tenants share the scope's mu
        # mu chains per (scope, dataset) across tenants.
        last: dict[str, float] = {}
        for r in mine:
            if r["dataset"] in last:
                assert r["duals_before"][1] == last[r["dataset"]]
            last[r["dataset"]] = r["duals_after"][1]
    # The scope state: under its own key, stored with its partition, named by the key.
    written = run.checkpoint()
    assert {k for k in written if k.startswith(b"t:\x00")} == {
        b"t:\x00scope:0",
        b"t:\x00scope:1",
    }
    for p in (0, 1):
        st = run.router.tenants.get(scope_key(p))
        assert st is not None and st.tenant == scope_key(p) and st.seq == 12
        assert set(st.mu) == {"gsm8k", "*"}
        # the tenants' own states hold no mu: it is the scope's
        for t in TENANTS[p::2]:
            tst = run.router.tenants.get(t)
            assert tst is not None and tst.mu == {} and tst.seq == 4


def test_pooled_decisions_do_not_depend_on_the_batching() -> None:
    """A partition's requests decided in one batch or spread over many batches (mixed with the
    other partition's) give byte-identical records."""
    cfg = pooled_config()
    whole, pieces = Run(cfg), Run(cfg)
    items = [msg(i) for i in range(30)]
    whole.route(items)
    for lo in range(0, 30, 7):
        pieces.route(items[lo : lo + 7])
    key = lambda r: r["request_id"]  # noqa: E731
    assert sorted(whole.records, key=key) == sorted(pieces.records, key=key)


def test_without_mu_pooled_there_is_no_scope_state() -> None:
    run = Run(replace(pooled_config(), mu_pooled=False))
    run.route([msg(i) for i in range(8)])
    assert all("mu_scope" not in r for r in run.records)
    assert not any(k.startswith(b"t:\x00") for k in run.checkpoint())


def test_a_config_is_pooled_when_a_tenant_overrides_mode_pools(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = replace(pooled_config(), mu_pooled=False)
    assert pooled_in(pooled_config()) and not pooled_in(plain)
    overridden = replace(plain, tenant_overrides={"acme": {"mode": "green"}})
    assert not pooled_in(overridden)
    monkeypatch.setitem(PRESETS, "green", {**PRESETS["green"], "mu_pooled": True})
    assert pooled_in(overridden)


def _scope_fields(st: TenantState | None) -> tuple[Any, ...]:
    assert st is not None
    return (st.seq, dict(st.mu), dict(st.surprise), dict(st.warmup))


def _tenant_fields(st: TenantState | None) -> tuple[Any, ...]:
    assert st is not None
    return (st.seq, st.lam, st.nu, dict(st.mu), st.buckets, st.window_spend_g, st.chain)


@pytest.mark.parametrize("checkpointed", [0, 10])
def test_recovery_restores_the_scope_from_the_decisions_after_the_checkpoint(
    checkpointed: int,
) -> None:
    """A router that lost everything after its checkpoint (none, or after 10 requests) folds
    the later decisions from the log into the scope states: mu, mu_seq, the consumed surprise
    and the warm-up are as the live router left them, and the next decision is identical."""
    cfg = pooled_config()
    live = Run(cfg)
    items = [msg(i) for i in range(26)]
    live.route(items[:checkpointed])
    # Feedback pending in scope 0, checkpointed as the completion handler does it; then more
    # decisions (which consume it), whose checkpoint is lost.
    st0 = scope_for_core(live.router.tenants, 0)
    surprise = {"gsm8k": -0.25, "*": 0.1}
    store_scope(live.router.tenants, 0, {SCOPE_BOOK: replace(st0, surprise=surprise)})
    live.positions[scope_key(0)] = 17
    live.checkpoint()
    snapshot = dict(live.store)
    live.route(items[checkpointed:24])
    tail = live.records[checkpointed:]

    restored = Run(cfg, snapshot)
    for p in (0, 1):
        found = {dedupe_key(r["tenant"], r["request_id"]): r for r in tail if part(r) == p}
        restored.router.absorb_recovered(found, p, cfg.bucket_ms, cfg.budget_buckets, cfg)
    for p in (0, 1):
        assert _scope_fields(restored.router.tenants.get(scope_key(p))) == _scope_fields(
            live.router.tenants.get(scope_key(p))
        )
    for t in TENANTS:
        assert _tenant_fields(restored.router.tenants.get(t)) == _tenant_fields(
            live.router.tenants.get(t)
        )
    assert restored.positions.get(scope_key(0)) == 17
    scope0 = live.router.tenants.get(scope_key(0))
    assert scope0 is not None and scope0.surprise == {}  # consumed, in the recovered state too
    # Re-read from the checkpoint's position: the recovered are re-dispatched, the next ones
    # decided exactly as the live router decides them.
    live.route(items[24:])
    restored.route(items[checkpointed:])
    assert restored.raw == live.raw[-2:]


def test_the_scope_position_travels_in_decisions_and_the_changelog() -> None:
    run = Run(pooled_config())
    run.router.tenants.get(scope_key(1))
    run.positions[scope_key(1)] = 9
    run.positions["tenant-1"] = 4
    run.route([msg(1), msg(2)])
    by_p = {part(r): r for r in run.records}
    assert by_p[1][SCOPE_FEEDBACK_NEXT] == 9 and by_p[1][FEEDBACK_NEXT] == 4
    assert SCOPE_FEEDBACK_NEXT not in by_p[0]  # scope 0 has folded nothing yet
    run.checkpoint()
    reread: dict[str, int] = {}
    assert tenant_map(run.store, "tcl", reread).get(scope_key(1)) is not None
    assert reread == {scope_key(1): 9}


# --- the completion handler -------------------------------------------------------------
def completion(i: int, tenant: str, correct: bool | None = False) -> bytes:
    return orjson.dumps(
        {
            "schema_version": 1,
            "request_id": f"req-{i}",
            "tenant": tenant,
            "model": "large-70b",
            "region": "eu-north",
            "dataset": "gsm8k",
            "ts_ms": T0_MS + i,
            "latency_ms": 2500.0,
            "input_tokens": 180,
            "output_tokens": 150,
            "energy_j": 3600.0,
            "correct": correct,
        }
    )


def handler_for(world: SideInputWorld, positions: dict[str, int]) -> CompletionHandler:
    snapshots = EstimatorSnapshots(
        world.views, world.estimator_store, "snap", interval_s=0.0, clock=lambda: 1.0
    )
    return CompletionHandler(
        world.catalog,
        world.views,
        world.ingress,
        world.tenants,
        snapshots,
        world.dead_letters,
        world.counters,
        world.metrics,
        committing=lambda: False,
        feedback_next=positions,
    )


def pooled_world(
    positions: dict[str, int], store: dict[bytes, bytes] | None = None
) -> SideInputWorld:
    world = SideInputWorld()
    if store is not None:
        world.tenant_store = store
    world.tenants = tenant_map(world.tenant_store, "t.tenants", positions)
    cfg = pooled_config().to_dict()
    world.policy_store[GLOBAL_SCOPE] = orjson.dumps({"config": cfg, "policy_name": "gar-pd"})
    return world


def test_graded_completions_fold_into_their_partitions_scope_exactly_once() -> None:
    positions: dict[str, int] = {}
    world = pooled_world(positions)
    handler = handler_for(world, positions)
    batch = [
        message("t.completions", completion(0, "acme"), offset=3, partition=0),
        message("t.completions", completion(1, "globex"), offset=4, partition=0),
        message("t.completions", completion(2, "initech", correct=True), offset=8, partition=1),
        message("t.completions", completion(3, "acme", correct=None), offset=5, partition=0),
    ]
    prod = FakeProducer()
    sink = BatchSink(prod)
    handler.handle(batch, sink)
    asyncio.run(sink.flush())
    s0, s1 = world.tenants.get(scope_key(0)), world.tenants.get(scope_key(1))
    assert s0 is not None and s1 is not None
    assert s0.surprise["gsm8k"] < 0 < s1.surprise["gsm8k"]  # two wrong answers, one right
    assert s0.tenant == scope_key(0) and s0.seq == 0
    assert world.tenants.get("acme") is None  # the tenants' own states are not touched
    assert positions == {scope_key(0): 5, scope_key(1): 9}
    assert world.counters.feedback_folded == 3
    # Checkpointed with their partitions, positions included.
    written = {(k, p): orjson.loads(v) for p, k, v in prod.records("t.tenants")}
    assert set(written) == {(b"t:\x00scope:0", 0), (b"t:\x00scope:1", 1)}
    assert written[(b"t:\x00scope:0", 0)][FEEDBACK_NEXT] == 5
    # After a restart over the checkpoint, the same completions read again are not folded again.
    again: dict[str, int] = {}
    world2 = pooled_world(again, world.tenant_store)
    before = world2.tenants.get(scope_key(0))
    handler_for(world2, again).handle(batch[:2], BatchSink(FakeProducer()))
    assert world2.tenants.get(scope_key(0)) == before and world2.counters.feedback_folded == 0
    # A new one is.
    handler_for(world2, again).handle(
        [message("t.completions", completion(9, "acme"), offset=6, partition=0)],
        BatchSink(FakeProducer()),
    )
    after = world2.tenants.get(scope_key(0))
    assert after is not None and before is not None
    assert after.surprise["gsm8k"] < before.surprise["gsm8k"] and again[scope_key(0)] == 7
