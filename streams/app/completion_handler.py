"""The completions side input: completion telemetry -> estimators, correctness feedback into
the tenant states, completion and estimator-health metrics, and the estimator snapshots other
workers merge (the compacted estimators GlobalTable)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping

import orjson

from streams.app.checkpoint import CheckpointedMap
from streams.app.counters import Counters
from streams.app.dead_letters import SideInputDeadLetters
from streams.app.router import RawMessage, key_not_tenant
from streams.app.scopes import scope_for_core, scope_key, store_scope
from streams.app.sink import BatchSink
from streams.app.views import Views
from streams.core.catalog import Catalog
from streams.core.context import RoutingContext
from streams.core.emissions import realised_co2_g
from streams.core.errors import CoreError
from streams.core.feedback import fold_feedback
from streams.core.inputs import Completion
from streams.core.policies import find_policy
from streams.core.tenant import SCOPE_BOOK, TenantState
from streams.ingress.completions import parse_completion
from streams.ingress.context import IngressContext
from streams.ingress.rejected import Rejected, RejectReason, Stage
from streams.metrics import CompletionSample, Metrics
from streams.metrics.telemetry import estimator_samples

log = logging.getLogger(__name__)


class EstimatorSnapshots:
    """Publishes every locally owned partition's estimator to the compacted GlobalTable, at most
    once per ``interval_s``."""

    def __init__(
        self,
        views: Views,
        store: MutableMapping[bytes, bytes],
        changelog: str,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._views = views
        self._store = store
        self._changelog = changelog
        self._interval_s = interval_s
        self._clock = clock
        self._published_s = 0.0

    def publish_due(self, sink: BatchSink) -> None:
        now = self._clock()
        if now - self._published_s >= self._interval_s:
            self.publish(sink)
            self._published_s = now

    def publish(self, sink: BatchSink) -> None:
        for p, est in self._views.local_estimators.items():
            key = b"p%d" % p
            value = orjson.dumps(est.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)
            self._store[key] = value
            sink.add(self._changelog, key, value, partition=0)


class CompletionHandler:
    def __init__(
        self,
        catalog: Catalog,
        views: Views,
        ingress: IngressContext,
        tenants: CheckpointedMap[TenantState],
        snapshots: EstimatorSnapshots,
        dead_letters: SideInputDeadLetters,
        counters: Counters,
        metrics: Metrics,
        committing: Callable[[], bool],
        next_checkpoint: Callable[[], int] = lambda: 0,
        feedback_next: dict[str, int] | None = None,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._catalog = catalog
        self._views = views
        self._ingress = ingress
        self._tenants = tenants
        self._snapshots = snapshots
        self._dead_letters = dead_letters
        self._counters = counters
        self._metrics = metrics
        self._committing = committing  # whether a routed batch's commit is still running
        self._next_checkpoint = next_checkpoint  # the number the next captured one will get
        # Tenant -> next completions offset not yet folded into its state (the same dict the
        # tenant map writes with each state, and the router with each decision).
        self._feedback_next = {} if feedback_next is None else feedback_next
        self._wall_ms = wall_ms

    def handle(self, msgs: list[RawMessage], sink: BatchSink) -> int:
        """Returns the number of the checkpoint whose write the agent awaits before Faust acks
        these completions (0: ``sink`` holds the fold, or nothing was folded)."""
        """One batch of completion messages; output is queued into ``sink``."""
        views = self._views
        now_ms = self._wall_ms()
        touched: set[int] = set()
        samples: list[CompletionSample] = []
        observed: list[Completion] = []
        slo_ms = views.policy.latency_slo_ms
        # Feedback is priced in the context in force before these completions reach the
        # estimators (the snapshot only refreshes on the routing side's timer).
        ctx = views.context(refresh_estimators=False)
        partition_of: dict[str, int] = {}
        offsets: list[int] = []  # of ``observed``
        partitions: list[int] = []  # of ``observed``
        for msg in msgs:
            parsed = self._observe(msg)
            if isinstance(parsed, Rejected):
                self._dead_letters.write(sink, parsed, msg.key, msg.partition, now_ms)
                continue
            touched.add(msg.partition)
            self._counters.completions += 1
            if parsed.correct is not None and parsed.dataset is not None:
                self._counters.grade(parsed.dataset, bool(parsed.correct))
            observed.append(parsed)
            offsets.append(msg.offset)
            partitions.append(msg.partition)
            partition_of[parsed.tenant] = msg.partition
            samples.append(self._sample(parsed, slo_ms))
        self._metrics.completions(samples)
        wait_for = self._fold_into_tenants(ctx, observed, offsets, partitions, partition_of, sink)
        self._record_estimator_error(observed)
        if touched:
            views.mark_estimators_dirty()
        self._snapshots.publish_due(sink)
        return wait_for

    def _observe(self, msg: RawMessage) -> Completion | Rejected:
        """Parse and fold into this partition's estimator; a model the catalog lacks is a
        reject like any other (never a crash)."""
        parsed = parse_completion(msg.value, self._ingress, msg.source)
        if isinstance(parsed, Rejected):
            return parsed
        if msg.key != parsed.tenant.encode():
            # Its feedback belongs to the tenant state on the tenant's partition.
            return key_not_tenant("completion", parsed.tenant, parsed.request_id, msg)
        try:
            self._views.estimator_for(msg.partition).observe(parsed)
        except CoreError as exc:
            return Rejected(
                "completion",
                Stage.CATALOG,
                RejectReason.UNKNOWN_MODEL,
                str(exc),
                msg.value or b"",
                msg.source,
                None,
                parsed.request_id,
                parsed.tenant,
            )
        return parsed

    def _sample(self, c: Completion, slo_ms: float) -> CompletionSample:
        views = self._views
        return CompletionSample(
            c.tenant,
            c.model,
            c.region,
            c.latency_ms,
            co2_realised_g=realised_co2_g(
                self._catalog, views.intensity, views.policy, c.region, c.ts_ms, c.energy_j
            ),
            energy_j=c.energy_j,
            correct=c.correct,
            slo_latency_ms=slo_ms,
            dataset=c.dataset,
        )

    def _fold_into_tenants(
        self,
        ctx: RoutingContext,
        observed: list[Completion],
        offsets: list[int],
        partitions: list[int],
        partition_of: dict[str, int],
        sink: BatchSink,
    ) -> int:
        """Correctness feedback (``core.fold_feedback``) into the tenant states (with pooled
        accuracy duals: into the scope state of the completion's partition, see ``scopes``),
        for a policy that uses it, exactly once across crashes (docs/architecture.md,
        "Correctness feedback"):

        * each state carries the next completions offset of its tenant (scope: of its
          partition) not yet folded into it (``feedback_next``, in its changelog record and its
          decision records); a completion below it, read again after a crash, is not folded
          again;
        * the completions are acknowledged to Faust only once a checkpoint holding their fold
          is written. The new states are checkpointed right away (into ``sink``) when no routed
          batch is committing; otherwise the next batch's checkpoint carries them (a write from
          here could land before a committing batch's older capture of the same tenant):
          returns that checkpoint's number then, else 0."""
        policy = find_policy(self._views.policy_name)
        if policy is None or not policy.uses_feedback:
            return 0
        if not observed or ctx.config.feedback_weight == 0.0:
            return 0
        pooled = ctx.config.mu_pooled  # as fold_feedback decides who holds the surprise
        holders = [
            scope_key(p) if pooled else c.tenant for c, p in zip(observed, partitions, strict=True)
        ]
        for holder in set(holders):
            self._tenants.get(holder)  # first: it loads the holder's position too
        positions = self._feedback_next
        graded = [
            (c, o, h, p)
            for c, o, h, p in zip(observed, offsets, holders, partitions, strict=True)
            if c.correct is not None
        ]
        fresh = [g for g in graded if g[1] >= positions.get(g[2], -1)]
        if len(fresh) < len(graded):
            log.warning(
                "%d graded completions read again (after a restart): already folded, skipped",
                len(graded) - len(fresh),
            )
        if not fresh:
            return 0
        try:
            if pooled:
                self._fold_pooled(ctx, [(c, p) for c, _, _, p in fresh])
            else:
                self._fold_per_tenant(ctx, [c for c, _, _, _ in fresh], partition_of)
        except CoreError as exc:  # a catalog change between parse and fold: skip, never crash
            log.warning("correctness feedback not folded: %s", exc)
            return 0
        for _, o, holder, _ in fresh:
            positions[holder] = max(positions.get(holder, -1), o + 1)
        self._counters.feedback_folded += len(fresh)
        if not self._committing():
            self._tenants.checkpoint(sink)  # flushed (so written) before the agent acks
            return 0
        return self._next_checkpoint()

    def _fold_per_tenant(
        self, ctx: RoutingContext, fresh: list[Completion], partition_of: dict[str, int]
    ) -> None:
        states = {}
        for c in fresh:
            st = self._tenants.get(c.tenant)
            if st is not None:
                states[c.tenant] = st
        new = fold_feedback(ctx, states, fresh)
        for tenant, st in new.items():
            self._tenants.put(tenant, st, partition_of[tenant])

    def _fold_pooled(self, ctx: RoutingContext, fresh: list[tuple[Completion, int]]) -> None:
        """Each partition's completions into its scope's state (all folds computed first, so
        a failing one changes nothing)."""
        groups: dict[int, list[Completion]] = {}
        for c, p in fresh:
            groups.setdefault(p, []).append(c)
        new = {
            p: fold_feedback(ctx, {SCOPE_BOOK: scope_for_core(self._tenants, p)}, group)
            for p, group in sorted(groups.items())
        }
        for p, states in new.items():
            store_scope(self._tenants, p, states)

    def _record_estimator_error(self, observed: list[Completion]) -> None:
        """Estimated (what the router prices with now) vs observed accuracy, p95 latency and
        energy per candidate: the estimator-health measurements."""
        if self._metrics.writer is None or not observed:
            return
        snap = self._views.context(refresh_estimators=False).snapshot
        cands, accs = estimator_samples(self._catalog, observed, snap)
        self._metrics.candidates(cands)
        self._metrics.accuracy(accs)
