"""The router's imperative shell, without Faust: raw request bytes in, output records out.

``Router.route_batch`` is what the Faust agent calls for every ``stream.take_events`` batch:
parse each message, drop re-deliveries (dedupe index), call the core's ``decide_batch`` once for
the whole batch, and queue decision / dispatch / dead-letter records. State changes (tenant
duals and budgets, dedupe ids) are held in memory and written as changelog records only at
``checkpoint`` (once per batch), see ``docs/architecture.md``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from streams.app.checkpoint import TENANT_KEY, CheckpointedMap
from streams.app.dedupe import DedupeIndex, dedupe_key
from streams.app.records import BatchEncoder, dead_letter_bytes, dispatch_bytes
from streams.app.sink import BatchSink
from streams.app.topics import TopicLayout
from streams.core.catalog import Catalog
from streams.core.context import RoutingContext
from streams.core.inputs import Request
from streams.core.policies.gar import redo_side_state
from streams.core.policy_config import PolicyConfig
from streams.core.tenant import TenantState, TenantWork
from streams.ingress.context import IngressContext
from streams.ingress.rejected import Reason, Rejected, Source, Stage
from streams.ingress.requests import parse_request

log = logging.getLogger(__name__)

_DEFAULT_CONFIG = PolicyConfig()


class RawMessage(NamedTuple):
    """One consumed Kafka record (what a Faust event carries, minus Faust). A named tuple:
    one is built per consumed message, and a frozen dataclass costs a setattr per field."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None

    @property
    def source(self) -> Source:
        return Source(self.topic, self.partition, self.offset, self.timestamp_ms, self.key)


@dataclass(slots=True)
class BatchStats:
    messages: int = 0
    decided: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    redispatched: int = 0
    decisions_per_model: dict[str, int] = field(default_factory=dict)
    dead_letter_reasons: dict[tuple[str, str], int] = field(default_factory=dict)
    decisions: list[Any] = field(default_factory=list)  # core Decision objects (for metrics)


def encode_tenant(st: TenantState) -> bytes:
    return orjson.dumps(st.to_dict())


def decode_tenant(raw: bytes) -> TenantState:
    return TenantState.from_dict(orjson.loads(raw))


class Router:
    """Routes batches; owns the hot (in-memory) tenant state and dedupe index."""

    def __init__(
        self,
        catalog: Catalog,
        layout: TopicLayout,
        policy: Any,
        tenants: CheckpointedMap[TenantState],
        dedupe: DedupeIndex,
        ingress: IngressContext | None = None,
    ) -> None:
        self.catalog = catalog
        self.layout = layout
        self.policy = policy
        self.tenants = tenants
        self.dedupe = dedupe
        self.ingress = ingress or IngressContext.from_catalog(catalog)
        # Decisions already on the decisions topic but not yet in a durable checkpoint (found by
        # the recovery scan after a crash): request id -> decision record.
        self.recovered: dict[str, dict[str, Any]] = {}
        self.totals = BatchStats()

    def absorb_recovered(
        self, found: Mapping[str, Mapping[str, Any]], partition: int, bucket_ms: int,
        n_buckets: int, config: PolicyConfig | None = None,
    ) -> None:
        """Fold decisions found after the last checkpoint (in log order) into the tenant state,
        exactly as ``decide_batch`` did when it made them: the budget window is charged with the
        decision's CO2, the duals become its ``duals_after`` and the sequence its
        ``tenant_seq``; a gar-pd decision also consumes its dataset's pending feedback surprise
        and, with ``config``'s mu warm-up on, one warm-up step. Their requests will then be
        re-dispatched, not re-decided."""
        for key, rec in found.items():  # key: dedupe_key(tenant, request id)
            self.recovered[key] = dict(rec)
            tenant = str(rec["tenant"])
            st = self.tenants.get(tenant) or TenantState(tenant)
            if int(rec["tenant_seq"]) <= st.seq:
                continue  # already in the checkpoint
            work = TenantWork(st, bucket_ms, n_buckets)
            in_window = work.advance(int(rec["ts_ms"]))
            work.charge(int(rec["ts_ms"]), float(rec["co2_g"]), in_window)
            after = rec["duals_after"]
            ds = str(rec["dataset"])
            if rec.get("policy") == "gar-pd":
                redo_side_state(work, ds, config or _DEFAULT_CONFIG)
            work.lam, work.nu = float(after["lambda"]), float(after["nu"])
            work.mu[ds] = float(after["mu"])
            work.seq = int(rec["tenant_seq"])
            self.tenants.put(tenant, work.freeze(), partition)

    def route_batch(
        self, ctx: RoutingContext, batch: Sequence[RawMessage], sink: BatchSink,
        dispatch_sink: BatchSink,
    ) -> BatchStats:
        """Queue decisions and dead letters into ``sink`` and dispatch records into
        ``dispatch_sink``; the caller flushes ``sink`` before ``dispatch_sink`` so that a
        dispatch on the wire always has its decision on the wire."""
        stats = BatchStats(messages=len(batch))
        now_ms = int(time.time() * 1000)
        todo: list[tuple[Request, RawMessage]] = []
        for msg in batch:
            parsed = parse_request(msg.value, self.ingress)
            if isinstance(parsed, Rejected):  # the Source is built for rejects only
                self._dead_letter(sink, parsed.at(msg.source), msg, now_ms, stats)
                continue
            rid = parsed.request_id
            key = dedupe_key(parsed.tenant, rid)  # scoped: another tenant's id is not a repeat
            done = self.recovered.pop(key, None)
            if done is not None:
                # Decided before a crash, its dispatch maybe not sent: re-emit the dispatch
                # (byte-identical), never a new decision.
                self._dispatch(dispatch_sink, parsed, done)
                if not self.dedupe.seen(key):
                    self.dedupe.add(key, msg.partition, parsed.ts_ms)
                stats.redispatched += 1
                continue
            if self.dedupe.seen(key):
                stats.duplicates += 1
                continue
            why = ctx.validate(parsed)
            if why is not None:
                rej = Rejected("request", Stage.ROUTE, Reason.NO_CANDIDATE, why,
                               msg.value or b"", msg.source, None, rid, parsed.tenant)
                self._dead_letter(sink, rej, msg, now_ms, stats)
                self.dedupe.add(key, msg.partition, parsed.ts_ms)
                continue
            self.dedupe.add(key, msg.partition, parsed.ts_ms)
            todo.append((parsed, msg))
        if todo:
            self._decide(ctx, todo, sink, dispatch_sink, stats)
        self._accumulate(stats)
        return stats

    def _decide(
        self,
        ctx: RoutingContext,
        todo: list[tuple[Request, RawMessage]],
        sink: BatchSink,
        dispatch_sink: BatchSink,
        stats: BatchStats,
    ) -> None:
        partition_of: dict[str, int] = {}
        states: dict[str, TenantState] = {}
        for req, msg in todo:
            partition_of[req.tenant] = msg.partition
            if req.tenant not in states:
                states[req.tenant] = self.tenants.get(req.tenant) or TenantState(req.tenant)
        requests = [r for r, _ in todo]
        try:
            new_states, decisions = self.policy.decide_batch(ctx, states, requests)
            decided = list(zip(todo, decisions, strict=True))
        except Exception:  # a core bug must not stop the worker or lose the batch
            log.exception("decide_batch failed on %d requests; deciding one by one", len(todo))
            new_states, decided = self._decide_one_by_one(ctx, states, todo, sink, stats)
        for tenant, st in _as_mapping(new_states).items():
            self.tenants.put(tenant, st, partition_of[tenant])
        stats.decisions = [dec for _, dec in decided]
        encoder = BatchEncoder()
        dispatch_topics = self.layout.dispatch
        per_model = stats.decisions_per_model
        decisions_topic, add, add_dispatch = self.layout.decisions, sink.add, dispatch_sink.add
        for (req, msg), dec in decided:
            model, decision, dispatch = encoder.encode(dec, req, msg)
            add(decisions_topic, req.tenant.encode(), decision, partition=msg.partition)
            # No event-time stamp (nor on decisions): see topics.TIMESTAMP_TYPE.
            add_dispatch(dispatch_topics[model], req.request_id.encode(), dispatch)
            per_model[model] = per_model.get(model, 0) + 1
        stats.decided += len(decided)

    def _decide_one_by_one(
        self,
        ctx: RoutingContext,
        states: dict[str, TenantState],
        todo: list[tuple[Request, RawMessage]],
        sink: BatchSink,
        stats: BatchStats,
    ) -> tuple[dict[str, TenantState], list[tuple[tuple[Request, RawMessage], Any]]]:
        """Isolate the request(s) the core cannot decide: dead letter (stage ``internal``, the
        original bytes kept for replay) only those; the rest are decided as usual."""
        states = dict(states)
        decided = []
        now_ms = int(time.time() * 1000)
        for req, msg in todo:
            try:
                new, decs = self.policy.decide_batch(ctx, states, [req])
            except Exception as exc:
                rej = Rejected("request", Stage.INTERNAL, Reason.INTERNAL_ERROR,
                               f"{type(exc).__name__}: {exc}", msg.value or b"", msg.source,
                               None, req.request_id, req.tenant)
                self._dead_letter(sink, rej, msg, now_ms, stats)
                continue
            states.update(_as_mapping(new))
            decided.append(((req, msg), decs[0]))
        return states, decided

    def _dispatch(self, sink: BatchSink, req: Request, record: Mapping[str, Any]) -> None:
        topic = self.layout.dispatch[str(record["model"])]
        # No event-time stamp (nor on decisions): see topics.TIMESTAMP_TYPE.
        sink.add(topic, req.request_id.encode(), dispatch_bytes(req, record))

    def _dead_letter(
        self, sink: BatchSink, rej: Rejected, msg: RawMessage, now_ms: int, stats: BatchStats
    ) -> None:
        key = rej.request_id.encode() if rej.request_id else msg.key
        sink.add(self.layout.dead_letter, key, dead_letter_bytes(rej, now_ms),
                 partition=msg.partition)
        stats.dead_lettered += 1
        rs = (str(rej.reason), str(rej.stage))
        stats.dead_letter_reasons[rs] = stats.dead_letter_reasons.get(rs, 0) + 1

    def _accumulate(self, s: BatchStats) -> None:
        t = self.totals
        t.messages += s.messages
        t.decided += s.decided
        t.dead_lettered += s.dead_lettered
        t.duplicates += s.duplicates
        t.redispatched += s.redispatched
        for m, n in s.decisions_per_model.items():
            t.decisions_per_model[m] = t.decisions_per_model.get(m, 0) + n


def _as_mapping(states: Any) -> Mapping[str, TenantState]:
    if isinstance(states, Mapping):
        return states
    return {st.tenant: st for st in states}


def tenant_map(store: Any, changelog_topic: str) -> CheckpointedMap[TenantState]:
    return CheckpointedMap(store, changelog_topic, encode_tenant, decode_tenant, TENANT_KEY)
