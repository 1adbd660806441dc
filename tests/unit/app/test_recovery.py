"""Crash recovery's fold of logged decisions leaves the state an uninterrupted run has."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import orjson
import pytest
from support.fake_producer import FakeProducer
from support.worker import SMALL_CATALOG, request_bytes, request_message

from streams.app.dedupe import DedupeIndex, dedupe_key
from streams.app.router import Router, tenant_map
from streams.app.sink import BatchSink
from streams.config import Settings
from streams.core.catalog import Catalog
from streams.core.context import RoutingContext
from streams.core.policies import get_policy
from streams.core.policy_config import PolicyConfig
from streams.kafka.topics import TopicLayout

T0_MS = 1_672_531_200_000


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
    live = Router(
        catalog,
        layout,
        get_policy("gar-pd"),
        tenant_map(store, "tcl"),
        DedupeIndex({}, "dcl", 3_600_000, 1000),
    )
    prod = FakeProducer()
    first = BatchSink(prod)
    live.route_batch(
        ctx,
        [request_message(i, request_bytes(i, "t", T0_MS + i)) for i in range(2)],
        first,
        BatchSink(prod),
    )
    live.tenants.checkpoint(BatchSink(FakeProducer()))  # the last durable checkpoint
    checkpointed = dict(store)
    live.tenants.put("t", replace(live.tenants.get("t"), surprise={"gsm8k": 0.25}), 0)
    live.route_batch(
        ctx,
        [request_message(i, request_bytes(i, "t", T0_MS + i)) for i in range(2, 6)],
        first,
        BatchSink(prod),
    )
    asyncio.run(first.flush())
    records = [orjson.loads(v) for _, _, v in prod.records(layout.decisions)]
    # A restarted router: the checkpoint (with the surprise the completions agent had added
    # after it, as a feedback fold would checkpoint it) plus the decisions after it.
    restart_store = dict(checkpointed)
    restarted = Router(
        catalog,
        layout,
        live.policy,
        tenant_map(restart_store, "tcl"),
        DedupeIndex({}, "dcl", 3_600_000, 1000),
    )
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
