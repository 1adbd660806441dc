"""The promise every fault test checks at its end, in one place: each input position is exactly
one decision or one dead letter, no request is decided twice, every tenant's dual chain is
continuous (``tenant_seq`` 1..n, each link's duals and window follow from the one before) and
``gar audit`` re-derives every decision and finds no chain break. Also a producer that keeps
requests flowing while a fault runs, for as long as the fault takes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from support.audit import audited_decisions

from faults.helpers import T0_MS, Accounting, Item, Pos, TopicReader, account, request
from streams.config import Settings
from streams.core.replay import check_chain
from streams.kafka.topics import TopicLayout

BAD_EVERY = 50  # one truncated-JSON input in 50: dead letters are accounted too


def flowing_item(i: int, tenants: int, step_ms: int = 100) -> tuple[Item, bool]:
    """Request ``i`` (tenant ``i % tenants``), and whether it is a deliberately broken one."""
    tenant = f"tenant-{i % tenants}"
    raw = request(i, tenant, T0_MS + i * step_ms)
    bad = i % BAD_EVERY == 7
    return (tenant.encode(), raw[: len(raw) // 2] if bad else raw), bad


@dataclass
class Flow:
    """What a ``FlowingProducer`` published: positions in send order, which inputs are bad."""

    positions: list[Pos] = field(default_factory=list)
    bad: set[Pos] = field(default_factory=set)
    valid_ids: set[str] = field(default_factory=set)


class FlowingProducer:
    """Publishes ``per_tick`` requests every ``tick_s`` with an idempotent acks=all producer
    (a send retried across a leader change is appended once) until ``stop`` is called and at
    least ``min_items`` were sent."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        tenants: int,
        per_tick: int = 20,
        tick_s: float = 0.1,
        min_items: int = 0,
        max_items: int = 1_000_000,
    ) -> None:
        self.settings, self.topic, self.tenants = settings, topic, tenants
        self.per_tick, self.tick_s = per_tick, tick_s
        self.min_items, self.max_items = min_items, max_items
        self.sent = 0
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> Flow:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka.bootstrap_servers,
            linger_ms=5,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=60_000,
        )
        await producer.start()
        futures: list[tuple[asyncio.Future[Any], bool, str | None]] = []
        try:
            while self.sent < self.max_items and (
                not self._stop.is_set() or self.sent < self.min_items
            ):
                for _ in range(self.per_tick):
                    (key, value), bad = flowing_item(self.sent, self.tenants)
                    fut = await producer.send(self.topic, value=value, key=key)
                    futures.append((fut, bad, None if bad else f"req-{self.sent:06d}"))
                    self.sent += 1
                await asyncio.sleep(self.tick_s)
            metas = await asyncio.gather(*(f for f, _, _ in futures))
        finally:
            await producer.stop()
        flow = Flow()
        for meta, (_, bad, rid) in zip(metas, futures, strict=True):
            pos = (meta.partition, meta.offset)
            flow.positions.append(pos)
            if bad:
                flow.bad.add(pos)
            elif rid is not None:
                flow.valid_ids.add(rid)
        return flow


def all_accounted(flow: Flow) -> Callable[[TopicReader], bool]:
    def done(r: TopicReader) -> bool:
        return len(r.accounted) >= len(flow.positions) and r.dispatched_ids >= r.decided_ids

    return done


def check_promise(reader: TopicReader, lay: TopicLayout, flow: Flow) -> Accounting:
    """Exactly one outcome per input, the right kind, no decision twice, chains continuous."""
    acc = account(reader, lay)
    outcome = acc.outcomes()
    assert len(set(flow.positions)) == len(flow.positions)
    missing = set(flow.positions) - set(outcome)
    assert not missing, f"{len(missing)} inputs without an outcome, e.g. {sorted(missing)[:5]}"
    assert set(outcome) == set(flow.positions), "an outcome for a position never produced"
    assert max(outcome.values()) == 1, "an input was both decided and dead-lettered"
    assert set(acc.dead) == flow.bad
    assert all(d["reason"] == "invalid_json" for v in acc.dead.values() for d in v)
    assert {d["request_id"] for d in acc.decisions} == flow.valid_ids
    assert all(len(v) == 1 for v in acc.decided.values()), "a request was decided twice"
    assert acc.decision_records == len(acc.decided), "a decision record was written twice"
    # In log order: a tenant's lambda/nu chain follows tenant_seq, and a pooled mu scope (one
    # per requests partition) its decisions partition's order; both hold in the log.
    assert check_chain(acc.decisions) == []
    records = sorted(acc.decisions, key=lambda d: (d["tenant"], d["tenant_seq"]))
    for _, chain in itertools.groupby(records, key=lambda d: d["tenant"]):
        seqs = [d["tenant_seq"] for d in chain]
        assert seqs == list(range(1, len(seqs) + 1)), "a tenant's chain has a gap or a repeat"
    return acc


def audit_clean(settings: Settings, catalog_path: Path, decisions: int) -> None:
    """``gar audit``: every decision re-derived bit for bit from its context, no break in any
    tenant's dual chain, every MAC verified."""
    assert len(audited_decisions(settings, catalog_path)) == decisions
