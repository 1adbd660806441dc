"""The route step and its commit chain: decide a batch of raw requests, then write its records
in an order that makes a crash recoverable.

Per batch: decisions and request dead letters go on the wire first (their own producer); the
dispatch records and the checkpoint of the state the batch produced follow only after they are
acked *and* every earlier batch's commit finished. The checkpoint is captured before the next
batch changes the state; its marks (decisions end, requests position per partition) are those
of the newest batch whose commit finished or is running, so after a crash the tail scan and the
re-read cover the batches after them, whose decisions are re-dispatched (identical), not
re-decided. See docs/architecture.md, "Dedupe and crash recovery".
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from functools import partial

from streams.app.checkpoint import CheckpointedMap
from streams.app.contexts import ContextPublisher
from streams.app.control_gate import ControlGate
from streams.app.counters import Counters
from streams.app.dedupe import DedupeIndex
from streams.app.producers import Producers
from streams.app.recovery import PartitionRecovery
from streams.app.router import RawMessage, Router
from streams.app.sink import BatchSink
from streams.app.views import Views
from streams.config import Settings
from streams.core.policies import Policy, get_policy
from streams.core.tenant import TenantState
from streams.metrics import Metrics
from streams.metrics.decision_metrics import DecisionMetrics

log = logging.getLogger(__name__)

Offsets = dict[tuple[str, int], int]  # (topic, partition) -> next offset after a flush


class PolicyCache:
    """One instance per policy name (``get_policy`` raises ``CoreError`` for an unknown one)."""

    def __init__(self) -> None:
        self._policies: dict[str, Policy] = {}

    def __call__(self, name: str) -> Policy:
        if name not in self._policies:
            self._policies[name] = get_policy(name)
        return self._policies[name]


class BatchPipeline:
    def __init__(
        self,
        settings: Settings,
        decisions_topic: str,
        router: Router,
        views: Views,
        tenants: CheckpointedMap[TenantState],
        dedupe: DedupeIndex,
        producers: Producers,
        recovery: PartitionRecovery,
        control: ControlGate,
        policies: PolicyCache,
        decision_metrics: DecisionMetrics,
        metrics: Metrics,
        counters: Counters,
        contexts: ContextPublisher,
    ) -> None:
        self._worker = settings.worker
        self._contexts = contexts
        self._decisions_topic = decisions_topic
        self._router = router
        self._views = views
        self._tenants = tenants
        self._dedupe = dedupe
        self._producers = producers
        self._recovery = recovery
        self._control = control
        self._policies = policies
        self._decision_metrics = decision_metrics
        self._metrics = metrics
        self._counters = counters
        # Direct hot path: a batch's commit runs while the next batch is decided. Faust path:
        # a batch is committed before ``process`` returns (Faust acks the events then).
        self._pipelined = settings.worker.hot_path == "direct"
        # Commit steps of routed batches, oldest first; each awaits the one before it.
        self._commits: deque[asyncio.Future[None]] = deque()
        # Marks of committed batches not yet in a captured checkpoint:
        # partition -> (decisions end offset, next requests offset).
        self._lagging: dict[int, tuple[int | None, int]] = {}
        self._decisions_flush: asyncio.Future[Offsets] | None = None  # the last batch's
        self._estimators_refreshed_s = 0.0
        self._checkpointed_s = 0.0
        # Checkpoints numbered as captured and as written: folded correctness feedback is
        # acknowledged to Faust only once a checkpoint holding it is written.
        self._captured = 0
        self._written = 0
        # Called with each batch's request append times and the time its decisions were
        # acknowledged (the status page's decision latency); None: nobody listens.
        self.on_decided: Callable[[list[int | None], int], None] | None = None

    # --- state the other parts of the worker ask about -------------------------------------
    def decisions_in_flight(self) -> bool:
        """Whether the last batch's decisions are unacknowledged (group commit waits on it)."""
        return self._decisions_flush is not None and not self._decisions_flush.done()

    def committing(self) -> bool:
        """Whether some routed batch's commit step is still running."""
        return not all(c.done() for c in self._commits)

    def budget_window_s(self) -> float:
        return self._views.policy.budget_window_ms / 1000

    def next_checkpoint(self) -> int:
        """The number the next captured checkpoint will get."""
        return self._captured + 1

    async def checkpoint_written(self, n: int) -> None:
        """Until checkpoint ``n`` is written; if nothing is left to capture it (no routed batch
        committing and none decided since, as on the idle Faust hot path), write the tenant
        states still dirty from here."""
        while self._written < n:
            if self._captured < n and not self.committing():
                sink = self._producers.shared_sink()
                self._tenants.checkpoint(sink)
                await sink.flush()
                return
            await asyncio.sleep(0.005)

    # --- the route step -----------------------------------------------------------------------
    async def process(self, msgs: list[RawMessage]) -> int:
        """One batch of raw requests: decide and queue its records now (CPU), then write
        them in order in a commit step that runs while the next batch is decided (direct hot
        path) or before returning (Faust path, which acks the events when this returns).
        Returns how many of the messages were requests (not dead-lettered)."""
        w = self._worker
        if not self._control.is_open:  # once per start: policy and intensity first
            await self._control.wait()
            log.info("control topics applied in %.1f s", self._control.waited_s)
        now = time.monotonic()
        refresh = now - self._estimators_refreshed_s >= w.estimator_publish_interval_ms / 1000
        ctx = self._views.context(refresh_estimators=refresh)
        if refresh:
            self._estimators_refreshed_s = now
        await self._recovery.ensure({m.partition for m in msgs})
        views = self._views
        self._router.policy = self._policies(views.policy_name)
        # The context record is on its way (or acked) before any decision referencing it.
        digest, context_sent = self._contexts.current(
            ctx, views.policy_name, views.policy_offset, now
        )
        t0 = time.perf_counter()
        second, third = self._producers.shared_sink(), self._producers.shared_sink()
        fourth = self._producers.shared_sink()
        # A refused decision becomes a dead letter of its request, its dispatch withheld.
        first = await self._producers.decisions_sink(msgs, second)
        stats = self._router.route_batch(ctx, msgs, first, second, digest)
        # The checkpoint of the state this batch produced is captured now, before the next
        # batch changes it, and sent only after this batch's decisions are acked (commit).
        captured = 0
        if now - self._checkpointed_s >= w.checkpoint_interval_ms / 1000:
            captured = self.capture_checkpoint(third, fourth)
            self._checkpointed_s = now
        # Decisions + dead letters: on the wire once their context record is acked.
        decisions = asyncio.ensure_future(first.flush(after=context_sent))
        self._decisions_flush = decisions
        prev = self._commits[-1] if self._commits else None
        self._commits.append(
            asyncio.ensure_future(self._commit(msgs, decisions, second, third, fourth, prev))
        )
        if captured:
            self._commits[-1].add_done_callback(partial(self._on_committed, captured))
        self._decision_metrics.add(stats.decisions)
        self._decision_metrics.flush(budget_window_s=self.budget_window_s())
        if stats.dead_letter_reasons:
            self._metrics.dead_letters(stats.dead_letter_reasons)
        self._metrics.throughput("route", len(msgs), time.perf_counter() - t0)
        # Faust path: done before returning. Direct path: at most two batches committing.
        while self._commits and (not self._pipelined or len(self._commits) > 2):
            await self._commits.popleft()
        await asyncio.sleep(0)  # let the producer's sender put the decisions on the wire
        return stats.messages - stats.dead_lettered

    async def _commit(
        self,
        msgs: list[RawMessage],
        decisions: asyncio.Future[Offsets],
        second: BatchSink,
        third: BatchSink,
        fourth: BatchSink,
        prev: asyncio.Future[None] | None,
    ) -> None:
        offsets = await decisions  # the decisions (and dead letters) are durable ...
        appended, decided_ms = [m.timestamp_ms for m in msgs], int(time.time() * 1000)
        self._decision_metrics.add_request_latency(appended, decided_ms)
        if self.on_decided is not None:
            self.on_decided(appended, decided_ms)
        if prev is not None:
            await prev  # ... and every earlier batch's dispatch and checkpoint too
        if self._counters.batches + 1 == self._worker.fault_exit_after_decisions_batch:
            os._exit(70)  # fault injection (tests): the worst moment to die
        # This batch's ends become the marks of a later batch's checkpoint, which is sent after
        # this commit finished (its dispatch acked): the commits are chained.
        lagging = self._lagging
        for (topic, p), nxt in offsets.items():
            if topic == self._decisions_topic:
                lagging[p] = (nxt, lagging.get(p, (None, 0))[1])
        for m in msgs:  # messages are in offset order per partition
            lagging[m.partition] = (lagging.get(m.partition, (None, 0))[0], m.offset + 1)
        # ... before their dispatch records and the tenant states (no order needed between
        # those), and the dedupe marks only once those states are acked (``capture_checkpoint``).
        await asyncio.gather(second.flush(), third.flush())
        await fourth.flush()
        self._counters.batches += 1

    def _on_committed(self, n: int, commit: asyncio.Future[None]) -> None:
        if not commit.cancelled() and commit.exception() is None:
            self._written = max(self._written, n)

    def capture_checkpoint(self, tenants: BatchSink, dedupe: BatchSink) -> int:
        """Queue the state as it is now: tenants touched since the last checkpoint into
        ``tenants``, dedupe ids and the marks of the newest batch whose commit finished (or,
        inside ``process``, is running) into ``dedupe``. Returns the checkpoint's number.

        ``dedupe`` must be flushed only after ``tenants`` was acked: the two tables have their
        own changelogs, and a watermark durable ahead of the tenant states it covers makes the
        recovery scan skip decisions those states never absorbed (a crash between the two
        then re-issued tenant sequence numbers)."""
        self._captured += 1
        for p, (wm, pos) in self._lagging.items():
            if wm is not None:
                self._dedupe.set_watermark(p, wm)
            self._dedupe.set_position(p, pos)
        self._lagging.clear()
        self._tenants.checkpoint(tenants)
        self._dedupe.checkpoint(dedupe)
        return self._captured

    async def drain(self) -> None:
        """Wait for every commit, then write a full checkpoint (batches the checkpoint interval
        skipped, feedback folded meanwhile), so a restart or the next owner starts here."""
        while self._commits:
            await self._commits.popleft()
        tenants, dedupe = self._producers.shared_sink(), self._producers.shared_sink()
        n = self.capture_checkpoint(tenants, dedupe)
        await tenants.flush()
        await dedupe.flush()
        self._written = max(self._written, n)
        self._decision_metrics.flush(budget_window_s=self.budget_window_s(), force=True)
