"""The Faust app: topics, tables and the four agents, wired from one Settings object.

Agents are thin (parse -> core -> state -> send); the work is in ``Router`` (requests),
``Views`` (replicated read state) and the batched ``BatchSink``. See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaProducer

from streams.app.catalog import load_catalog
from streams.app.checkpoint import compact
from streams.app.control_gate import ControlGate
from streams.app.dedupe import DedupeIndex
from streams.app.direct import DirectRequests
from streams.app.kafka import client_kwargs, faust_broker_url, use_idempotent_producer
from streams.app.loop_lag import LoopLagMonitor
from streams.app.records import dead_letter_bytes
from streams.app.recovery import DecisionTail
from streams.app.router import RawMessage, Router, tenant_map
from streams.app.sink import BatchSink
from streams.app.topics import (
    DEDUPE_TABLE,
    ESTIMATOR_TABLE,
    INTENSITY_TABLE,
    POLICY_TABLE,
    TENANT_TABLE,
    TopicLayout,
    changelog_topic_name,
)
from streams.app.views import GLOBAL_SCOPE, Views, zone_history_bytes
from streams.config import Settings
from streams.core.catalog import Catalog
from streams.core.context import RoutingContext
from streams.core.errors import CoreError
from streams.core.feedback import fold_feedback
from streams.core.inputs import Completion
from streams.core.intensity import MAX_HISTORY_READINGS, IntensityReading
from streams.core.policies.base import get_policy
from streams.core.policy_config import PolicyConfig
from streams.ingress.completions import parse_completion
from streams.ingress.context import IngressContext
from streams.ingress.intensity import parse_intensity_many
from streams.ingress.policy import parse_policy
from streams.ingress.rejected import Reason, Rejected, Stage
from streams.metrics import CompletionSample, LagSample, Metrics, build_metrics
from streams.metrics.records import DecisionMetrics
from streams.metrics.telemetry import estimator_samples
from streams.security.kafka import faust_credentials

log = logging.getLogger(__name__)

RAW: dict[str, Any] = {
    "key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"
}


@dataclass(slots=True)
class Counters:
    """Cumulative per-process counters (logged, exported by the metrics writer)."""

    completions: int = 0
    intensity_readings: int = 0
    policy_updates: int = 0
    dead_letters: int = 0
    batches: int = 0
    recovered_decisions: int = 0
    feedback_folded: int = 0  # graded completions folded into gar-pd's tenant surprise
    extra: dict[str, int] = field(default_factory=dict)


@dataclass
class RouterApp:
    settings: Settings
    catalog: Catalog
    layout: TopicLayout
    app: faust.App
    router: Router
    views: Views
    tables: dict[str, Any]
    counters: Counters
    metrics: Metrics


def events_to_raw(events: Sequence[Any]) -> list[RawMessage]:
    out = []
    for ev in events:
        m = ev.message
        ts = m.timestamp
        out.append(RawMessage(m.topic, m.partition, m.offset,
                              None if ts is None else int(ts * 1000), m.key, m.value))
    return out


def create_app(
    settings: Settings, catalog: Catalog | None = None, metrics: Metrics | None = None
) -> RouterApp:
    catalog = catalog or load_catalog(settings)
    layout = TopicLayout.from_settings(settings, catalog.model_names)
    w = settings.worker
    app = faust.App(
        settings.app_id,
        broker=faust_broker_url(settings.kafka),
        broker_credentials=faust_credentials(settings.kafka),  # SASL/TLS, like every client
        store=w.store,
        topic_partitions=layout.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        web_enabled=w.web_enabled,
        broker_session_timeout=settings.kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka.heartbeat_interval_ms / 1000,
        broker_commit_interval=1.0,
        producer_max_batch_size=1_000_000,
        # Every send is a whole batch built by BatchSink: lingering only delays it (1 ms
        # added ~1.4 ms per produce round trip, and a decision waits for two of them).
        producer_linger_ms=0,
        stream_buffer_maxsize=max(4 * w.batch_max, 4096),
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
    )
    use_idempotent_producer(app)  # a retried produce request is not appended twice
    completions_topic = app.topic(layout.completions, **RAW)
    intensity_topic = app.topic(layout.carbon_intensity, **RAW)
    policy_topic = app.topic(layout.policy, **RAW)
    control = ControlGate(settings, [layout.policy, layout.carbon_intensity],
                          timeout_s=w.control_catchup_timeout_s)

    raw_tbl: dict[str, Any] = {"key_type": bytes, "value_type": bytes}  # -> "raw" serializers
    tenant_tbl = app.Table(TENANT_TABLE, partitions=layout.partitions, **raw_tbl)
    dedupe_tbl = app.Table(DEDUPE_TABLE, partitions=layout.partitions, **raw_tbl)
    # GlobalTables: one partition (Faust's workaround for recovery loops with several workers).
    glob: dict[str, Any] = {"partitions": 1, "recovery_buffer_size": 1, **raw_tbl}
    intensity_tbl = app.GlobalTable(INTENSITY_TABLE, **glob)
    policy_tbl = app.GlobalTable(POLICY_TABLE, **glob)
    estimator_tbl = app.GlobalTable(ESTIMATOR_TABLE, **glob)
    changelog = {n: changelog_topic_name(settings, n) for n in
                 (TENANT_TABLE, DEDUPE_TABLE, INTENSITY_TABLE, POLICY_TABLE, ESTIMATOR_TABLE)}

    views = Views(catalog, PolicyConfig(), w.policy, intensity_tbl.data, policy_tbl.data,
                  estimator_tbl.data)
    ingress = IngressContext.from_catalog(catalog)
    tenants = tenant_map(tenant_tbl.data, changelog[TENANT_TABLE])
    dedupe = DedupeIndex(dedupe_tbl.data, changelog[DEDUPE_TABLE], w.dedupe_window_ms,
                         w.dedupe_max_per_partition)
    router = Router(catalog, layout, get_policy(w.policy), tenants, dedupe, ingress)
    counters = Counters()
    metrics = metrics if metrics is not None else build_metrics(settings.influx)
    tail = DecisionTail(settings.kafka)
    # Decision metrics are summed over batches and written once per writer interval.
    decision_metrics = DecisionMetrics(metrics, settings.influx.flush_interval_ms / 1000,
                                       background=True)
    scanned: set[int] = set()
    state = {"est_refreshed": 0.0, "est_published": 0.0, "checkpointed": 0.0}
    policies: dict[str, Any] = {}

    # Sinks on the shared producer append in the order their flushes start, too: a feedback
    # checkpoint written between batches must not land after a later batch's checkpoint of the
    # same tenant (the commit chain orders the batches' own writes already).
    shared_order = asyncio.Lock()

    def producer_sink() -> BatchSink:
        return BatchSink(app.producer._ensure_producer(), shared_order)  # type: ignore[attr-defined]

    # Decisions (and request dead letters) have a producer of their own: aiokafka keeps one
    # produce request in flight per broker connection, so on the shared producer a batch's
    # decisions queued behind the previous batch's dispatch + checkpoint request.
    own: list[AIOKafkaProducer] = []
    # Batches' decision flushes overlap (the next batch's starts before the previous one is
    # acked); this keeps their records in batch order on each decisions partition, which the
    # tail scan after a crash (log order = each tenant's sequence) and the marks rely on.
    decisions_order = asyncio.Lock()

    codec = settings.worker.decisions_compression
    compression = None if codec == "none" else codec

    async def decisions_sink() -> BatchSink:
        if not own:
            producer = AIOKafkaProducer(**client_kwargs(settings.kafka), acks="all",
                                        enable_idempotence=True, linger_ms=0,
                                        max_batch_size=1_000_000, max_request_size=4 * 2**20,
                                        compression_type=compression)
            await producer.start()
            own.append(producer)
        return BatchSink(own[0], decisions_order)

    def dead_letter(
        sink: BatchSink, rej: Rejected, key: bytes | None, partition: int, now_ms: int
    ) -> None:
        """Side-input rejects (completions, intensity, policy): record + count."""
        sink.add(layout.dead_letter, key, dead_letter_bytes(rej, now_ms), partition=partition)
        counters.dead_letters += 1
        metrics.dead_letters({(str(rej.reason), str(rej.stage)): 1})

    def policy_for(name: str) -> Any:
        if name not in policies:
            policies[name] = get_policy(name)
        return policies[name]

    async def ensure_recovered(partitions: set[int]) -> None:
        """Once per partition per assignment: find decisions newer than the checkpoint."""
        for p in sorted(partitions - scanned):
            wm = dedupe.watermark(p)
            if wm is None:
                # First time this app sees the partition: anchor the watermark durably before
                # any decision of ours can be written to it.
                end = await tail.end_offset(layout.decisions, p)
                dedupe.set_watermark(p, end)
                sink = producer_sink()
                dedupe.checkpoint(sink)
                await sink.flush()
            else:
                found, end = await tail.scan(layout.decisions, p, wm)
                cfg = views.policy
                router.absorb_recovered(found, p, cfg.bucket_ms, cfg.budget_buckets, cfg)
                counters.recovered_decisions += len(found)
                if found:
                    log.warning("partition %d: %d decisions after checkpoint %d (recovered)",
                                p, len(found), wm)
            scanned.add(p)

    pipelined = w.hot_path == "direct"
    # Commit steps of routed batches, oldest first; each awaits the one before it.
    commits: deque[asyncio.Future[None]] = deque()
    lagging: dict[int, tuple[int | None, int]] = {}  # partition -> (decisions end, next pos)
    in_flight: list[asyncio.Future[dict[tuple[str, int], int]]] = []  # the last decisions flush

    def budget_window_s() -> float:
        return views.policy.budget_window_ms / 1000

    def capture_checkpoint(sink: BatchSink) -> None:
        """Queue the state as it is now: tenants and dedupe ids touched since the last
        checkpoint, with the marks of the newest batch whose commit finished (or, inside
        ``process``, is running)."""
        for p, (wm, pos) in lagging.items():
            if wm is not None:
                dedupe.set_watermark(p, wm)
            dedupe.set_position(p, pos)
        lagging.clear()
        tenants.checkpoint(sink)
        dedupe.checkpoint(sink)

    async def drain() -> None:
        while commits:
            await commits.popleft()
        # Every batch is committed: a full checkpoint (batches the checkpoint interval skipped,
        # feedback folded meanwhile), so a restart or the next owner starts from here.
        sink = producer_sink()
        capture_checkpoint(sink)
        await sink.flush()
        decision_metrics.flush(budget_window_s=budget_window_s(), force=True)

    async def process(msgs: list[RawMessage]) -> None:
        """One batch of raw requests: decide and queue its records now (CPU), then write
        them in order in a commit step that runs while the next batch is decided (direct hot
        path) or before returning (Faust path, which acks the events when this returns)."""
        if not control.is_open:  # once per start: policy and intensity before the first batch
            await control.wait()
            log.info("control topics applied in %.1f s", control.waited_s)
        now = time.monotonic()
        refresh = now - state["est_refreshed"] >= w.estimator_publish_interval_ms / 1000
        ctx = views.context(refresh_estimators=refresh)
        if refresh:
            state["est_refreshed"] = now
        await ensure_recovered({m.partition for m in msgs})
        router.policy = policy_for(views.policy_name)
        t0 = time.perf_counter()
        first, second, third = await decisions_sink(), producer_sink(), producer_sink()
        stats = router.route_batch(ctx, msgs, first, second)
        # The checkpoint of the state this batch produced is captured now, before the next
        # batch changes it, and sent only after this batch's decisions are acked (commit).
        # Its marks are the newest ones whose batch is fully committed or committing (see
        # commit): they lag this batch, so after a crash the tail scan and the re-read cover
        # the batches after them, whose decisions are re-dispatched (identical), not re-decided.
        if now - state["checkpointed"] >= w.checkpoint_interval_ms / 1000:
            capture_checkpoint(third)
            state["checkpointed"] = now
        decisions = asyncio.ensure_future(first.flush())  # decisions + dead letters: on the wire
        in_flight[:] = [decisions]
        prev = commits[-1] if commits else None
        commits.append(asyncio.ensure_future(commit(msgs, decisions, second, third, prev)))
        decision_metrics.add(stats.decisions)
        decision_metrics.flush(budget_window_s=budget_window_s())
        if stats.dead_letter_reasons:
            metrics.dead_letters(stats.dead_letter_reasons)
        metrics.throughput("route", len(msgs), time.perf_counter() - t0)
        # Faust path: done before returning. Direct path: at most two batches committing.
        while commits and (not pipelined or len(commits) > 2):
            await commits.popleft()
        await asyncio.sleep(0)  # let the producer's sender put the decisions on the wire

    async def commit(
        msgs: list[RawMessage], decisions: asyncio.Future[dict[tuple[str, int], int]],
        second: BatchSink, third: BatchSink, prev: asyncio.Future[None] | None,
    ) -> None:
        offsets = await decisions  # the decisions (and dead letters) are durable ...
        if prev is not None:
            await prev  # ... and every earlier batch's dispatch and checkpoint too
        if counters.batches + 1 == w.fault_exit_after_decisions_batch:
            os._exit(70)  # fault injection (tests): the worst moment to die
        # This batch's ends become the marks of a later batch's checkpoint, which is sent after
        # this commit finished (its dispatch acked): the commits are chained.
        for (topic, p), nxt in offsets.items():
            if topic == layout.decisions:
                lagging[p] = (nxt, lagging.get(p, (None, 0))[1])
        for m in msgs:  # messages are in offset order per partition
            lagging[m.partition] = (lagging.get(m.partition, (None, 0))[0], m.offset + 1)
        # ... before their dispatch records and the checkpoint (no order needed between those).
        await asyncio.gather(second.flush(), third.flush())
        counters.batches += 1

    direct: DirectRequests | None = None
    if w.hot_path == "direct":
        direct = DirectRequests(settings, layout.requests, process, dedupe.position, drain,
                                lambda: bool(in_flight) and not in_flight[-1].done())

        @app.on_rebalance_complete.connect  # type: ignore[misc,arg-type]
        async def on_rebalanced(sender: Any, **kwargs: Any) -> None:
            assert direct is not None
            mine = {tp.partition for tp in app.consumer.assignment()
                    if tp.topic == layout.completions}
            await direct.on_assigned(mine)

        @app.task  # type: ignore[untyped-decorator]
        async def route_direct() -> None:
            assert direct is not None
            await direct.run()

        _ = (on_rebalanced, route_direct)
    else:
        requests_topic = app.topic(layout.requests, **RAW)

        @app.agent(requests_topic, name="route")
        async def route(stream: Any) -> None:
            async for events in stream.take_events(w.batch_max, within=w.batch_within_s):
                await process(events_to_raw(events))

        _ = route

    @app.agent(completions_topic, name="completions")
    async def completions(stream: Any) -> None:
        async for events in stream.take_events(w.batch_max, within=max(w.batch_within_s, 0.1)):
            sink = producer_sink()
            now_ms = int(time.time() * 1000)
            touched: set[int] = set()
            samples: list[CompletionSample] = []
            observed: list[Completion] = []
            slo_ms = views.policy.latency_slo_ms
            # Feedback is priced in the context in force before these completions reach the
            # estimators (the snapshot only refreshes on the routing side's timer).
            ctx = views.context(refresh_estimators=False)
            partition_of: dict[str, int] = {}
            for msg in events_to_raw(events):
                parsed = parse_completion(msg.value, ingress, msg.source)
                if not isinstance(parsed, Rejected):
                    try:
                        views.estimator_for(msg.partition).observe(parsed)
                    except CoreError as exc:
                        parsed = Rejected("completion", Stage.CATALOG, Reason.UNKNOWN_MODEL,
                                          str(exc), msg.value or b"", msg.source, None,
                                          parsed.request_id, parsed.tenant)
                if isinstance(parsed, Rejected):
                    dead_letter(sink, parsed, msg.key, msg.partition, now_ms)
                    continue
                touched.add(msg.partition)
                counters.completions += 1
                observed.append(parsed)
                partition_of[parsed.tenant] = msg.partition
                samples.append(CompletionSample(
                    parsed.tenant, parsed.model, parsed.region, parsed.latency_ms,
                    co2_realised_g=realised_co2_g(parsed.region, parsed.ts_ms, parsed.energy_j),
                    energy_j=parsed.energy_j, correct=parsed.correct, slo_latency_ms=slo_ms,
                ))
            metrics.completions(samples)
            fold_into_tenants(ctx, observed, partition_of, sink)
            record_estimator_error(observed)
            if touched:
                views.mark_estimators_dirty()
            now = time.monotonic()
            if now - state["est_published"] >= w.estimator_publish_interval_ms / 1000:
                publish_estimators(sink)
                state["est_published"] = now
            await sink.flush()

    def fold_into_tenants(ctx: RoutingContext, observed: list[Completion],
                          partition_of: dict[str, int], sink: BatchSink) -> None:
        """gar-pd's correctness feedback (``core.fold_feedback``) into the tenant states.

        The new states are checkpointed right away only when no routed batch is committing;
        otherwise the next batch's checkpoint carries them (a write from here could land
        before a committing batch's older capture of the same tenant and be overwritten).
        Completion offsets are Faust's, not in the checkpoint: a crash can re-count or drop
        the feedback of the last few seconds (docs/architecture.md, "Correctness feedback")."""
        if views.policy_name != "gar-pd" or not observed or ctx.config.feedback_weight == 0.0:
            return
        states = {}
        for c in observed:
            st = tenants.get(c.tenant)
            if st is not None:
                states[c.tenant] = st
        try:
            new = fold_feedback(ctx, states, observed)
        except CoreError as exc:  # a catalog change between parse and fold: skip, never crash
            log.warning("correctness feedback not folded: %s", exc)
            return
        for tenant, st in new.items():
            tenants.put(tenant, st, partition_of[tenant])
        counters.feedback_folded += sum(1 for c in observed if c.correct is not None)
        if all(c.done() for c in commits):
            tenants.checkpoint(sink)

    def record_estimator_error(observed: list[Completion]) -> None:
        """Estimated (what the router prices with now) vs observed accuracy, p95 latency and
        energy per candidate: the estimator-health measurements."""
        if metrics.writer is None or not observed:
            return
        snap = views.context(refresh_estimators=False).snapshot
        cands, accs = estimator_samples(catalog, observed, snap)
        metrics.candidates(cands)
        metrics.accuracy(accs)

    def faust_lag() -> list[LagSample]:
        """Lag of the topics Faust reads for this worker (completions; requests on the faust hot
        path): high watermark minus the next offset to read."""
        consumer = app.consumer
        read_offsets: Any = getattr(consumer, "_read_offset", {})  # Faust's last read, per tp
        out = []
        for tp in consumer.assignment():
            if tp.topic not in (layout.completions, layout.requests):
                continue
            read = read_offsets.get(tp)
            try:
                high = consumer.highwater(tp)
            except Exception:  # not fetched yet
                continue
            if high is not None and read is not None:
                out.append(LagSample(tp.topic, tp.partition, settings.app_id,
                                     max(0, int(high) - int(read) - 1)))
        return out

    def realised_co2_g(region: str, ts_ms: int, energy_j: float | None) -> float | None:
        """Measured energy x the zone's intensity at completion time x PUE (metrics only: the
        budget window is charged with decision-time estimates so the audit chain re-derives)."""
        ri = catalog.region_index.get(region)
        if energy_j is None or ri is None:
            return None
        cfg = views.policy
        zi = views.intensity.resolve(catalog.regions[ri].zone, ts_ms, cfg.intensity_max_age_ms,
                                     cfg.stale_intensity_g_per_kwh)
        return energy_j / 3.6e6 * zi.intensity_g_per_kwh * catalog.regions[ri].pue

    def publish_estimators(sink: BatchSink) -> None:
        """Snapshot every locally owned partition's estimator to the compacted GlobalTable."""
        for p, est in views.local_estimators.items():
            key = b"p%d" % p
            value = orjson.dumps(est.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)
            estimator_tbl.data[key] = value
            sink.add(changelog[ESTIMATOR_TABLE], key, value, partition=0)

    @app.agent(intensity_topic, name="intensity")
    async def intensity(stream: Any) -> None:
        async for events in stream.take_events(w.batch_max, within=max(w.batch_within_s, 0.1)):
            sink = producer_sink()
            now_ms = int(time.time() * 1000)
            histories: dict[str, list[IntensityReading]] = {}
            for msg in events_to_raw(events):
                parsed = parse_intensity_many(msg.value, ingress, msg.source)
                if isinstance(parsed, Rejected):
                    dead_letter(sink, parsed, msg.key, msg.partition, now_ms)
                    continue
                for reading in parsed:
                    hist = histories.get(reading.zone)
                    if hist is None:
                        hist = histories[reading.zone] = list(views.zone_history(reading.zone))
                    hist.append(reading)
                    counters.intensity_readings += 1
            for zone, hist in histories.items():
                newest = max(r.ts_ms for r in hist)
                keep = sorted((r for r in hist if newest - r.ts_ms <= 24 * 3_600_000),
                              key=lambda r: r.ts_ms)[-MAX_HISTORY_READINGS:]
                value = zone_history_bytes(tuple(keep))
                intensity_tbl.data[zone.encode()] = value
                sink.add(changelog[INTENSITY_TABLE], zone.encode(), value, partition=0)
            await sink.flush()

    @app.agent(policy_topic, name="policy")
    async def policy(stream: Any) -> None:
        async for events in stream.take_events(100, within=0.1):
            sink = producer_sink()
            now_ms = int(time.time() * 1000)
            for msg in events_to_raw(events):
                parsed = parse_policy(msg.value, ingress, msg.source)
                if isinstance(parsed, Rejected):
                    dead_letter(sink, parsed, msg.key, msg.partition, now_ms)
                    continue
                name = parsed.policy_name or w.policy
                try:
                    policy_for(name)
                except CoreError as exc:
                    rej = Rejected("policy", Stage.VALIDATE, Reason.OUT_OF_RANGE, str(exc),
                                   msg.value or b"", msg.source, "policy_name")
                    dead_letter(sink, rej, msg.key, msg.partition, now_ms)
                    continue
                value = compact(orjson.dumps({
                    "config": parsed.config.to_dict(), "policy_name": name,
                    "source_offset": parsed.source_offset, "issued_at_ms": parsed.issued_at_ms,
                }))
                policy_tbl.data[GLOBAL_SCOPE] = value
                sink.add(changelog[POLICY_TABLE], GLOBAL_SCOPE, value, partition=0)
                counters.policy_updates += 1
            await sink.flush()

    @app.on_partitions_revoked.connect  # type: ignore[misc,arg-type]
    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        # Partitions may move: drop caches; the tables (recovered from changelogs) are the truth.
        if direct is not None:
            await direct.on_revoked()  # waits for the batch in flight
        else:
            await drain()  # checkpoints feedback folded since the last batch
        tenants.invalidate()
        dedupe.reset()
        router.recovered.clear()
        scanned.clear()
        views.drop_local()

    @app.on_before_shutdown.connect  # type: ignore[misc,arg-type]
    async def close_metrics(sender: Any, **kwargs: Any) -> None:
        decision_metrics.flush(budget_window_s=budget_window_s(), force=True)
        decision_metrics.close()
        metrics.close()
        await tail.close()
        if direct is not None:
            await direct.close()
        while own:
            await own.pop().stop()

    @app.task  # type: ignore[untyped-decorator]
    async def quiet_root_logger() -> None:
        # `-l warn` leaves the root logger at DEBUG; resetting it is worth 9-34% (design notes).
        logging.getLogger().setLevel(getattr(logging, w.log_level.upper(), logging.WARNING))

    loop_lag = LoopLagMonitor()

    @app.task  # type: ignore[untyped-decorator]
    async def watch_loop_lag() -> None:
        await loop_lag.run()

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def report() -> None:
        lag = loop_lag.take()
        metrics.event_loop(lag.max_ms, lag.mean_ms, lag.samples)
        decision_metrics.flush(budget_window_s=budget_window_s())  # idle faust hot path
        if direct is not None:
            metrics.consumer_lag([LagSample(layout.requests, p, settings.app_id, n)
                                  for p, n in direct.lag().items()])
        if metrics.writer is not None:
            metrics.consumer_lag(faust_lag())
        t = router.totals
        log.info("routed=%d decided=%d dead=%d dup=%d completions=%d feedback=%d batches=%d "
                 "loop_lag_ms max=%.1f mean=%.2f", t.messages, t.decided, t.dead_lettered,
                 t.duplicates, counters.completions, counters.feedback_folded, counters.batches,
                 lag.max_ms, lag.mean_ms)

    tables = {TENANT_TABLE: tenant_tbl, DEDUPE_TABLE: dedupe_tbl, INTENSITY_TABLE: intensity_tbl,
              POLICY_TABLE: policy_tbl, ESTIMATOR_TABLE: estimator_tbl}
    _ = (completions, intensity, policy, on_revoked, close_metrics, quiet_root_logger, report,
         watch_loop_lag)
    return RouterApp(settings, catalog, layout, app, router, views, tables, counters, metrics)
