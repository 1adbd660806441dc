"""The router's imperative shell, without Faust: raw request bytes in, output records out.

``Router.route_batch`` is what the Faust agent calls for every ``stream.take_events`` batch:
parse each message, drop re-deliveries (dedupe index), call the core's ``decide_batch`` once for
the whole batch (with pooled accuracy duals: once per requests partition, with its scope's
state, see ``scopes``), and queue decision / dispatch / dead-letter records. State changes (tenant
duals and budgets, dedupe ids) are held in memory and written as changelog records only at
``checkpoint`` (once per batch), see ``docs/architecture.md``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import orjson

from streams.app.checkpoint import TENANT_KEY, CheckpointedMap
from streams.app.dedupe import DedupeIndex, dedupe_key
from streams.app.record_bytes import DecisionEncoder, dead_letter_bytes, dispatch_bytes
from streams.app.scopes import pooled_in, scope_for_core, scope_key, scope_name, store_scope
from streams.app.sink import BatchSink
from streams.core.catalog import Catalog
from streams.core.context import RoutingContext
from streams.core.inputs import Request
from streams.core.policies import Policy, find_policy
from streams.core.policy_config import PolicyConfig
from streams.core.replay import duals_of
from streams.core.tenant import SCOPE_BOOK, TenantState, TenantWork
from streams.ingress.context import IngressContext
from streams.ingress.rejected import Kind, Rejected, RejectReason, Source, Stage
from streams.ingress.requests import parse_request
from streams.kafka.topics import TopicLayout
from streams.schema import bounded_key
from streams.schema.decision_mac import DecisionSigner

log = logging.getLogger(__name__)

_DEFAULT_CONFIG = PolicyConfig.default()


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


# The tenant's next completions offset not yet folded into its state (feedback exactly once):
# kept in the tenant's changelog record and in its decision records.
FEEDBACK_NEXT = "completions_next_offset"
# The same for the scope whose pooled mu priced a decision (its decision records carry it).
SCOPE_FEEDBACK_NEXT = "scope_completions_next_offset"


def encode_tenant(st: TenantState, feedback_next: int | None = None) -> bytes:
    d = st.to_dict()
    if feedback_next is not None:
        d[FEEDBACK_NEXT] = feedback_next
    return orjson.dumps(d)


def decode_tenant(raw: bytes, feedback_next: dict[str, int] | None = None) -> TenantState:
    d = orjson.loads(raw)
    pos = d.pop(FEEDBACK_NEXT, None)
    st = TenantState.from_dict(d)
    if feedback_next is not None and pos is not None:
        feedback_next[st.tenant] = int(pos)
    return st


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
        feedback_next: dict[str, int] | None = None,
        signer: DecisionSigner | None = None,
    ) -> None:
        self.catalog = catalog
        self.signer = signer  # None: records are written unsigned ("mac": null)
        self.layout = layout
        self.policy = policy
        self.tenants = tenants
        self.dedupe = dedupe
        self.ingress = ingress or IngressContext.from_catalog(catalog)
        # Tenant -> next completions offset not yet in its state (see ``tenant_map``); a
        # decision record carries its tenant's, so a recovered decision restores it.
        self.feedback_next: dict[str, int] = {} if feedback_next is None else feedback_next
        # Decisions already on the decisions topic but not yet in a durable checkpoint (found by
        # the recovery scan after a crash): request id -> decision record.
        self.recovered: dict[str, dict[str, Any]] = {}
        self.totals = BatchStats()
        self._policies: dict[str, Policy | None] = {}
        self._pooled_cfg: tuple[PolicyConfig, bool] | None = None  # config -> pooled_in

    def _policy_named(self, name: str) -> Policy | None:
        """The policy a recovered record names (None if this build does not know it)."""
        if name not in self._policies:
            self._policies[name] = find_policy(name)
        return self._policies[name]

    def absorb_recovered(
        self,
        found: Mapping[str, Mapping[str, Any]],
        partition: int,
        bucket_ms: int,
        n_buckets: int,
        config: PolicyConfig | None = None,
    ) -> None:
        """Fold decisions found after the last checkpoint (in log order) into the tenant state,
        exactly as ``decide_batch`` did when it made them: the budget window is charged with the
        decision's CO2, the duals become its ``duals_after`` and the sequence its
        ``tenant_seq``, its chain head the record's ``mac`` and gar-target's deficit the one
        after it (decisions.v2); the policy that made it redoes its side state
        (``Policy.redo_side_state``: gar-pd consumes the dataset's pending feedback surprise
        and, with ``config``'s mu warm-up on, one warm-up step). A decision priced with its
        partition's pooled mu (``mu_scope``) puts its mu, ``mu_seq`` and that side state into
        the scope's state instead (``scopes``). Their requests will then be re-dispatched, not
        re-decided."""
        cat = self.catalog
        cfg = config or _DEFAULT_CONFIG
        for key, rec in found.items():  # key: dedupe_key(tenant, request id)
            self.recovered[key] = dict(rec)
            tenant = str(rec["tenant"])
            # The state's key of the dataset (unknown datasets share the catalog's "*" row).
            ds = cat.datasets[cat.dataset_idx(str(rec["dataset"]))]
            policy = self._policy_named(str(rec.get("policy")))
            after = duals_of(rec["duals_after"])
            pooled = rec.get("mu_scope") is not None
            if pooled:
                self._absorb_scope(rec, partition, ds, after.mu, policy, cfg.for_tenant(tenant))
            st = self.tenants.get(tenant) or TenantState(tenant)
            if int(rec["tenant_seq"]) <= st.seq:
                continue  # already in the checkpoint
            work = TenantWork(st, bucket_ms, n_buckets)
            in_window = work.advance(int(rec["ts_ms"]))
            work.charge(int(rec["ts_ms"]), float(rec["co2_g"]), in_window)
            if policy is not None and not pooled:
                policy.redo_side_state(work, ds, cfg.for_tenant(tenant))
            work.lam, work.nu = after.lam, after.nu
            if not pooled:  # a pooled mu is the scope's (above)
                work.mu[ds] = after.mu
            deficit = rec.get("deficit")
            if isinstance(deficit, list) and len(deficit) == 2:
                work.deficit[ds] = float(deficit[1])
            if isinstance(rec.get("mac"), str):
                work.chain = rec["mac"]
            work.seq = int(rec["tenant_seq"])
            self.tenants.put(tenant, work.freeze(), partition)
            # Its pending feedback was folded before it and consumed by it: a completion below
            # this offset read again must not be folded again.
            self._raise_feedback_next(tenant, rec.get(FEEDBACK_NEXT))

    def _absorb_scope(
        self,
        rec: Mapping[str, Any],
        partition: int,
        ds: str,
        mu_after: float,
        policy: Policy | None,
        config: PolicyConfig,
    ) -> None:
        """A recovered decision priced with partition ``partition``'s pooled mu into that
        scope's state, as ``decide_batch`` did: mu, the scope's decision count (``mu_seq``)
        and the side state (the surprise it consumed, a warm-up step)."""
        if rec.get("mu_scope") != scope_name(partition):
            log.warning(
                "decision %s on partition %d names scope %r: its pooled mu not recovered",
                rec.get("request_id"),
                partition,
                rec.get("mu_scope"),
            )
            return
        key = scope_key(partition)
        st = self.tenants.get(key) or TenantState(key)
        mu_seq = int(rec.get("mu_seq", 0))
        if mu_seq <= st.seq:
            return  # already in the checkpoint
        work = TenantWork(st, config.bucket_ms, config.budget_buckets)
        if policy is not None:
            policy.redo_side_state(work, ds, config)
        work.mu[ds] = mu_after
        work.seq = mu_seq
        self.tenants.put(key, work.freeze(), partition)
        self._raise_feedback_next(key, rec.get(SCOPE_FEEDBACK_NEXT))

    def _raise_feedback_next(self, holder: str, pos: Any) -> None:
        if pos is not None and int(pos) > self.feedback_next.get(holder, -1):
            self.feedback_next[holder] = int(pos)

    def route_batch(
        self,
        ctx: RoutingContext,
        batch: Sequence[RawMessage],
        sink: BatchSink,
        dispatch_sink: BatchSink,
        context: str = "",
    ) -> BatchStats:
        """Queue decisions and dead letters into ``sink`` and dispatch records into
        ``dispatch_sink``; the caller flushes ``sink`` before ``dispatch_sink`` so that a
        dispatch on the wire always has its decision on the wire. ``context``: the digest of
        ``ctx``'s context record, written (and acked) before ``sink``'s decisions."""
        stats = BatchStats(messages=len(batch))
        now_ms = int(time.time() * 1000)
        todo: list[tuple[Request, RawMessage]] = []
        for msg in batch:
            parsed = parse_request(msg.value, self.ingress)
            if isinstance(parsed, Rejected):  # its source: ``msg`` itself (no Source built)
                self._dead_letter(sink, parsed, msg, now_ms, stats)
                continue
            if msg.key != parsed.tenant.encode():
                # Keyed off its tenant, it sits on another partition than the tenant's state:
                # deciding it here would fork that state (docs/reliability.md).
                rej = key_not_tenant("request", parsed.tenant, parsed.request_id, msg)
                self._dead_letter(sink, rej, msg, now_ms, stats)
                continue
            # Ids are remembered by arrival time (the topic stamps LogAppendTime), never by a
            # producer's event time: a tenant stamping its requests hours ahead would evict
            # every other tenant's ids of the partition. Capped at this worker's clock, for a
            # requests topic that keeps the producer's CreateTime.
            arrival_ms = msg.timestamp_ms
            if arrival_ms is None or arrival_ms > now_ms:
                arrival_ms = now_ms
            rid = parsed.request_id
            key = dedupe_key(parsed.tenant, rid)  # scoped: another tenant's id is not a repeat
            done = self.recovered.pop(key, None)
            if done is not None:
                # Decided before a crash, its dispatch maybe not sent: re-emit the dispatch
                # (byte-identical), never a new decision.
                self._dispatch(dispatch_sink, parsed, done)
                if not self.dedupe.seen(key):
                    self.dedupe.add(key, msg.partition, arrival_ms)
                stats.redispatched += 1
                continue
            if self.dedupe.seen(key):
                stats.duplicates += 1
                continue
            why = ctx.validate(parsed)
            if why is not None:
                rej = Rejected(
                    "request",
                    Stage.ROUTE,
                    RejectReason.NO_CANDIDATE,
                    why,
                    msg.value or b"",
                    msg.source,
                    None,
                    rid,
                    parsed.tenant,
                )
                self._dead_letter(sink, rej, msg, now_ms, stats)
                self.dedupe.add(key, msg.partition, arrival_ms)
                continue
            self.dedupe.add(key, msg.partition, arrival_ms)
            todo.append((parsed, msg))
        if todo:
            self._decide(ctx, todo, sink, dispatch_sink, stats, context)
        self._accumulate(stats)
        return stats

    def _decide(
        self,
        ctx: RoutingContext,
        todo: list[tuple[Request, RawMessage]],
        sink: BatchSink,
        dispatch_sink: BatchSink,
        stats: BatchStats,
        context: str,
    ) -> None:
        partition_of: dict[str, int] = {}
        states: dict[str, TenantState] = {}
        for req, msg in todo:
            partition_of[req.tenant] = msg.partition
            if req.tenant not in states:
                states[req.tenant] = self.tenants.get(req.tenant) or TenantState(req.tenant)
        new_states: Mapping[str, TenantState]
        if self._pooled(ctx.config):
            new_states, decided = self._decide_by_scope(ctx, states, todo, sink, stats)
        else:
            new_states, decided = self._decide_group(ctx, states, todo, sink, stats)
        stats.decisions = [dec for _, dec in decided]
        encoder = DecisionEncoder(context, self.signer, states)
        dispatch_topics = self.layout.dispatch
        per_model = stats.decisions_per_model
        decisions_topic, add, add_dispatch = self.layout.decisions, sink.add, dispatch_sink.add
        feedback_next = self.feedback_next
        for (req, msg), dec in decided:
            pos = feedback_next.get(req.tenant)
            extra = None if pos is None else {FEEDBACK_NEXT: pos}
            if dec.mu_scope is not None:
                # The scope's position too: the decision consumed the scope's surprise.
                scope_pos = feedback_next.get(scope_key(msg.partition))
                if scope_pos is not None:
                    extra = {**(extra or {}), SCOPE_FEEDBACK_NEXT: scope_pos}
            model, decision, dispatch = encoder.encode(dec, req, msg, extra)
            add(decisions_topic, req.tenant.encode(), decision, partition=msg.partition)
            # No event-time stamp (nor on decisions): see topics.TIMESTAMP_TYPE.
            add_dispatch(dispatch_topics[model], req.request_id.encode(), dispatch)
            per_model[model] = per_model.get(model, 0) + 1
        stats.decided += len(decided)
        heads = encoder.heads
        for tenant, st in new_states.items():
            head = heads.get(tenant)
            if head is not None and head != st.chain:
                st = replace(st, chain=head)
            self.tenants.put(tenant, st, partition_of[tenant])

    def _pooled(self, cfg: PolicyConfig) -> bool:
        if self._pooled_cfg is None or self._pooled_cfg[0] is not cfg:
            self._pooled_cfg = (cfg, pooled_in(cfg))
        return self._pooled_cfg[1]

    def _decide_group(
        self,
        ctx: RoutingContext,
        states: dict[str, TenantState],
        todo: list[tuple[Request, RawMessage]],
        sink: BatchSink,
        stats: BatchStats,
    ) -> tuple[Mapping[str, TenantState], list[tuple[tuple[Request, RawMessage], Any]]]:
        """One ``decide_batch`` call over ``todo``: (changed states, decided requests)."""
        try:
            new_states, decisions = self.policy.decide_batch(ctx, states, [r for r, _ in todo])
            return _as_mapping(new_states), list(zip(todo, decisions, strict=True))
        except Exception:  # a core bug must not stop the worker or lose the batch
            log.exception("decide_batch failed on %d requests; deciding one by one", len(todo))
            return self._decide_one_by_one(ctx, states, todo, sink, stats)

    def _decide_by_scope(
        self,
        ctx: RoutingContext,
        states: dict[str, TenantState],
        todo: list[tuple[Request, RawMessage]],
        sink: BatchSink,
        stats: BatchStats,
    ) -> tuple[dict[str, TenantState], list[tuple[tuple[Request, RawMessage], Any]]]:
        """Pooled accuracy duals: each partition's requests (in log order) decided with that
        partition's scope state under ``SCOPE_BOOK``, which goes back to the tenant map with
        the partition. The tenants' changed states, and the decided requests partition by
        partition."""
        current = dict(states)  # threaded from group to group
        changed: dict[str, TenantState] = {}
        decided: list[tuple[tuple[Request, RawMessage], Any]] = []
        for p, group in group_by_partition(todo):
            current[SCOPE_BOOK] = scope_for_core(self.tenants, p)
            new, done = self._decide_group(ctx, current, group, sink, stats)
            store_scope(self.tenants, p, new)
            for t, st in new.items():
                if t != SCOPE_BOOK:
                    current[t] = changed[t] = st
            decided.extend(done)
        return changed, decided

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
                rej = Rejected(
                    "request",
                    Stage.INTERNAL,
                    RejectReason.INTERNAL_ERROR,
                    f"{type(exc).__name__}: {exc}",
                    msg.value or b"",
                    msg.source,
                    None,
                    req.request_id,
                    req.tenant,
                )
                self._dead_letter(sink, rej, msg, now_ms, stats)
                continue
            states.update(_as_mapping(new))
            decided.append(((req, msg), decs[0]))
        return states, decided

    def _dispatch(self, sink: BatchSink, req: Request, record: Mapping[str, Any]) -> None:
        model = str(record["model"])
        topic = self.layout.dispatch[model]
        # v1 records name the candidate; v2 records its model and region only.
        k = record.get("candidate")
        if not isinstance(k, int):
            k = self.catalog.candidate_index(model, str(record["region"]))
        # No event-time stamp (nor on decisions): see topics.TIMESTAMP_TYPE.
        sink.add(topic, req.request_id.encode(), dispatch_bytes(req, record, k))

    def _dead_letter(
        self, sink: BatchSink, rej: Rejected, msg: RawMessage, now_ms: int, stats: BatchStats
    ) -> None:
        """``rej`` of the input ``msg`` (whatever ``rej.source`` says)."""
        key = rej.request_id.encode() if rej.request_id else bounded_key(msg.key)
        value = dead_letter_bytes(rej, now_ms, msg)
        sink.add(self.layout.dead_letter, key, value, partition=msg.partition)
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


def key_not_tenant(kind: Kind, tenant: str, request_id: str, msg: RawMessage) -> Rejected:
    """The rejection of a valid record on a tenant-keyed topic whose Kafka key is not its
    tenant (no key, another tenant's, binary): it is on another partition than the tenant's
    state."""
    shown = "no key" if msg.key is None else f"key {msg.key[:40]!r}"
    return Rejected(
        kind,
        Stage.VALIDATE,
        RejectReason.KEY_NOT_TENANT,
        f"the Kafka key must be the tenant {tenant!r} (UTF-8), got {shown}",
        msg.value or b"",
        msg.source,
        None,
        request_id,
        tenant,
    )


def group_by_partition(
    todo: Sequence[tuple[Request, RawMessage]],
) -> list[tuple[int, list[tuple[Request, RawMessage]]]]:
    """``todo`` split by requests partition (ascending), each group in log order."""
    groups: dict[int, list[tuple[Request, RawMessage]]] = {}
    for item in todo:
        groups.setdefault(item[1].partition, []).append(item)
    return sorted(groups.items())


def _as_mapping(states: Any) -> Mapping[str, TenantState]:
    if isinstance(states, Mapping):
        return states
    return {st.tenant: st for st in states}


def tenant_map(
    store: Any, changelog_topic: str, feedback_next: dict[str, int] | None = None
) -> CheckpointedMap[TenantState]:
    """Tenant states over the table store; ``feedback_next`` (tenant -> next completions
    offset to fold) is written with each state and read back with it."""
    positions = {} if feedback_next is None else feedback_next

    def encode(st: TenantState) -> bytes:
        return encode_tenant(st, positions.get(st.tenant))

    def decode(raw: bytes) -> TenantState:
        return decode_tenant(raw, positions)

    return CheckpointedMap(store, changelog_topic, encode, decode, TENANT_KEY)
