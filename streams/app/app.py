"""The Faust app, wired from one Settings object: the worker's parts built and connected.

Behaviour lives in the parts: ``Router`` (requests -> records), ``BatchPipeline`` (route step
and commit chain), ``PartitionRecovery`` (the tail scan after a crash), the side-input handlers
(``CompletionHandler``, ``IntensityHandler``, ``PolicyHandler``), ``Views`` (replicated read
state) and ``Monitoring``. The agents here are loops that hand a batch to a part and flush its
sink. See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import faust

from streams.app.catalog import load_catalog
from streams.app.checkpoint import CheckpointedMap
from streams.app.completion_handler import CompletionHandler, EstimatorSnapshots
from streams.app.contexts import ContextPublisher
from streams.app.control_gate import ControlGate
from streams.app.counters import Counters
from streams.app.dead_letters import SideInputDeadLetters
from streams.app.dedupe import DedupeIndex
from streams.app.direct import DirectRequests
from streams.app.events import RAW_TOPIC, events_to_raw
from streams.app.health import WorkerHealth, register_health
from streams.app.intensity_handler import IntensityHandler
from streams.app.monitoring import Monitoring
from streams.app.pipeline import BatchPipeline, PolicyCache
from streams.app.policy_handler import PolicyHandler
from streams.app.probe import web_port_path
from streams.app.producers import Producers
from streams.app.recovery import DecisionTail, PartitionRecovery
from streams.app.router import RawMessage, Router, tenant_map
from streams.app.sink import BatchSink
from streams.app.status import StatusBoard, register_status
from streams.app.tables import WorkerTables
from streams.app.views import Views
from streams.app.web import AnyPortApp
from streams.config import Settings
from streams.core.catalog import Catalog
from streams.core.policies import get_policy
from streams.core.policy_config import PolicyConfig
from streams.core.tenant import TenantState
from streams.ingress.context import IngressContext
from streams.kafka.clients import faust_broker_url
from streams.kafka.credentials import faust_credentials
from streams.kafka.faust_producer import use_idempotent_producer
from streams.kafka.faust_recovery import stop_flow_before_resuming_streams
from streams.kafka.topics import (
    DEDUPE_TABLE,
    ESTIMATOR_TABLE,
    INTENSITY_TABLE,
    POLICY_TABLE,
    TENANT_TABLE,
    TopicLayout,
)
from streams.metrics import Metrics, build_metrics
from streams.metrics.decision_metrics import DecisionMetrics
from streams.schema.decision_mac import DecisionSigner

__all__ = ["Counters", "RouterApp", "create_app"]
log = logging.getLogger(__name__)


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


def faust_app(settings: Settings, layout: TopicLayout) -> faust.App:
    w = settings.worker
    data_dir = settings.worker_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    any_port = w.web_enabled and w.web_port == 0
    app_cls = partial(AnyPortApp, web_port_file=web_port_path(settings)) if any_port else faust.App
    app = app_cls(
        settings.app_id,
        broker=faust_broker_url(settings.kafka),
        broker_credentials=faust_credentials(settings.kafka),  # SASL/TLS, like every client
        store=w.store,
        topic_partitions=layout.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        datadir=str(data_dir),
        web_enabled=w.web_enabled,
        web_bind=w.web_bind,
        web_port=w.web_port or 6066,  # Faust refuses 0; AnyPortApp binds port 0 instead
        web_host=w.web_bind,
        # No table contents or cluster topology over HTTP: /status and the probes are enough.
        web_tables_enabled=False,
        web_router_enabled=False,
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
    stop_flow_before_resuming_streams()  # no side-input record lost after a rebalance
    return app


@dataclass
class WorkerParts:
    """The worker's parts, built once and shared by the agents and hooks that use them."""

    catalog: Catalog
    layout: TopicLayout
    tables: WorkerTables
    views: Views
    ingress: IngressContext
    tenants: CheckpointedMap[TenantState]
    dedupe: DedupeIndex
    router: Router
    counters: Counters
    metrics: Metrics
    decision_metrics: DecisionMetrics
    producers: Producers
    tail: DecisionTail
    recovery: PartitionRecovery
    control: ControlGate
    policies: PolicyCache
    pipeline: BatchPipeline


def create_app(
    settings: Settings, catalog: Catalog | None = None, metrics: Metrics | None = None
) -> RouterApp:
    catalog = catalog or load_catalog(settings)
    layout = TopicLayout.from_settings(settings, catalog.model_names)
    app = faust_app(settings, layout)
    parts = worker_parts(settings, app, catalog, layout, metrics)
    direct = _route_agent(app, settings, parts)
    handlers = _side_input_handlers(settings, parts)
    _side_input_agents(app, settings, parts.layout, parts.producers, handlers, parts.pipeline)
    _rebalance_and_shutdown(app, parts, direct)
    _check_control_on_start(app, parts.control)
    if settings.worker.web_enabled:
        _status_page(app, settings, parts, direct)
        register_health(app, WorkerHealth(app, parts.control, layout.requests, direct))
    Monitoring(
        app,
        settings.app_id,
        layout,
        parts.router,
        direct,
        parts.decision_metrics,
        parts.pipeline.budget_window_s,
        parts.metrics,
        parts.counters,
        parts.producers.guard,
    ).register(settings.worker.log_level)
    return RouterApp(
        settings,
        catalog,
        layout,
        app,
        parts.router,
        parts.views,
        parts.tables.by_name(),
        parts.counters,
        parts.metrics,
    )


def worker_parts(
    settings: Settings,
    app: faust.App,
    catalog: Catalog,
    layout: TopicLayout,
    metrics: Metrics | None = None,
) -> WorkerParts:
    w = settings.worker
    tables = WorkerTables.create(app, settings, layout)
    changelog = tables.changelog
    views = Views(
        catalog,
        PolicyConfig.default(),
        w.policy,
        tables.intensity.data,
        tables.policy.data,
        tables.estimators.data,
    )
    ingress = IngressContext.from_catalog(catalog)
    feedback_next: dict[str, int] = {}  # tenant -> next completions offset not in its state
    tenants = tenant_map(tables.tenant.data, changelog[TENANT_TABLE], feedback_next)
    dedupe = DedupeIndex(
        tables.dedupe.data, changelog[DEDUPE_TABLE], w.dedupe_window_ms, w.dedupe_max_per_partition
    )
    router = Router(
        catalog,
        layout,
        get_policy(w.policy),
        tenants,
        dedupe,
        ingress,
        feedback_next,
        decision_signer(settings),
    )
    counters = Counters()
    metrics = metrics if metrics is not None else build_metrics(settings.influx)
    # Decision metrics are summed over batches and written once per writer interval.
    decision_metrics = DecisionMetrics(
        metrics,
        settings.influx.flush_interval_ms / 1000,
        background=True,
        latency_slo_ms=lambda: views.policy.latency_slo_ms,
    )
    producers = Producers(app, settings, layout)
    tail = DecisionTail(settings.kafka)
    recovery = PartitionRecovery(
        tail, layout.decisions, dedupe, router, views, counters, producers.shared_sink
    )
    control = ControlGate(
        settings, [layout.policy, layout.carbon_intensity], timeout_s=w.control_catchup_timeout_s
    )
    policies = PolicyCache()
    contexts = ContextPublisher(
        catalog, layout.contexts, producers.contexts_sink, w.context_republish_s
    )
    pipeline = BatchPipeline(
        settings,
        layout.decisions,
        router,
        views,
        tenants,
        dedupe,
        producers,
        recovery,
        control,
        policies,
        decision_metrics,
        metrics,
        counters,
        contexts,
    )
    return WorkerParts(
        catalog,
        layout,
        tables,
        views,
        ingress,
        tenants,
        dedupe,
        router,
        counters,
        metrics,
        decision_metrics,
        producers,
        tail,
        recovery,
        control,
        policies,
        pipeline,
    )


def decision_signer(settings: Settings) -> DecisionSigner | None:
    """The signer of the decisions' MAC chain, or None (with a warning) without a key."""
    mac = settings.decision_mac
    if mac.key is None:
        log.warning(
            "GAR_DECISION_MAC__KEY is not set: decision records are written unsigned "
            "(no tamper-evident chain)"
        )
        return None
    return DecisionSigner(mac.key_id, mac.key.get_secret_value().encode())


def _rebalance_and_shutdown(
    app: faust.App, parts: WorkerParts, direct: DirectRequests | None
) -> None:
    @app.on_partitions_revoked.connect  # type: ignore[misc,arg-type]
    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        # Partitions may move: drop caches; the tables (recovered from changelogs) are the truth.
        if direct is not None:
            await direct.on_revoked()  # waits for the batch in flight
        else:
            await parts.pipeline.drain()  # checkpoints feedback folded since the last batch
        parts.tenants.invalidate()
        parts.dedupe.reset()
        parts.router.recovered.clear()
        parts.recovery.forget()
        parts.views.drop_local()

    @app.on_before_shutdown.connect  # type: ignore[misc,arg-type]
    async def close_metrics(sender: Any, **kwargs: Any) -> None:
        parts.decision_metrics.flush(budget_window_s=parts.pipeline.budget_window_s(), force=True)
        parts.decision_metrics.close()
        parts.metrics.close()
        await parts.tail.close()
        if direct is not None:
            await direct.close()
        await parts.producers.close()

    _ = (on_revoked, close_metrics)


def _status_page(
    app: faust.App, settings: Settings, parts: WorkerParts, direct: DirectRequests | None
) -> None:
    completions = parts.layout.completions

    def assigned() -> list[int]:
        try:
            return sorted(
                {tp.partition for tp in app.consumer.assignment() if tp.topic == completions}
            )
        except Exception:  # the consumer is not started yet
            return []

    board = StatusBoard(
        settings,
        parts.layout,
        parts.views,
        parts.router,
        parts.tenants,
        parts.counters,
        direct,
        assigned,
    )
    parts.pipeline.on_decided = board.add_latency
    w = settings.worker

    def web_url() -> str:  # port 0: the port the server bound (streams/app/web.py)
        port = getattr(app.web, "bound_port", None) or w.web_port
        return f"http://{w.web_bind}:{port}"

    register_status(app, board, web_url)


def _check_control_on_start(app: faust.App, control: ControlGate) -> None:
    """Start the control-topic catch-up once the first assignment is recovered, not when the
    first request arrives: readiness reports it, and an idle worker is ready too. The first
    batch waits on the same check."""
    started: list[asyncio.Task[None]] = []

    @app.on_rebalance_complete.connect  # type: ignore[misc,arg-type]
    async def check_control(sender: Any, **kwargs: Any) -> None:
        if not started and not control.is_open:
            started.append(asyncio.ensure_future(control.wait()))

    _ = check_control


# A handler of one side input's batch; it may return the number of a checkpoint to await before
# Faust acks the batch (the completions' folded feedback).
Handler = Callable[[list[RawMessage], BatchSink], int | None]


def _side_input_handlers(settings: Settings, parts: WorkerParts) -> dict[str, Handler]:
    """Agent name -> the handler of its batches."""
    w = settings.worker
    p = parts
    tables, views, ingress, counters, metrics = p.tables, p.views, p.ingress, p.counters, p.metrics
    changelog = tables.changelog
    dead_letters = SideInputDeadLetters(p.layout.dead_letter, counters, metrics)
    snapshots = EstimatorSnapshots(
        views,
        tables.estimators.data,
        changelog[ESTIMATOR_TABLE],
        w.estimator_publish_interval_ms / 1000,
    )
    completions = CompletionHandler(
        p.catalog,
        views,
        ingress,
        p.tenants,
        snapshots,
        dead_letters,
        counters,
        metrics,
        p.pipeline.committing,
        p.pipeline.next_checkpoint,
        p.router.feedback_next,
    )
    intensity = IntensityHandler(
        views, ingress, tables.intensity.data, changelog[INTENSITY_TABLE], dead_letters, counters
    )
    policy = PolicyHandler(
        ingress,
        tables.policy.data,
        changelog[POLICY_TABLE],
        w.policy,
        p.policies,
        dead_letters,
        counters,
    )
    return {
        "completions": completions.handle,
        "intensity": intensity.handle,
        "policy": policy.handle,
    }


def _route_agent(app: faust.App, settings: Settings, parts: WorkerParts) -> DirectRequests | None:
    """The requests reader: the direct hot path (own consumer, returned) or a Faust agent."""
    w = settings.worker
    layout, pipeline = parts.layout, parts.pipeline
    if w.hot_path != "direct":

        @app.agent(app.topic(layout.requests, **RAW_TOPIC), name="route")
        async def route(stream: Any) -> None:
            async for events in stream.take_events(w.batch_max, within=w.batch_within_s):
                await pipeline.process(events_to_raw(events))

        _ = route
        return None
    direct = DirectRequests(
        settings,
        layout.requests,
        pipeline.process,
        parts.dedupe.position,
        pipeline.drain,
        pipeline.decisions_in_flight,
    )

    @app.on_rebalance_complete.connect  # type: ignore[misc,arg-type]
    async def on_rebalanced(sender: Any, **kwargs: Any) -> None:
        mine = {tp.partition for tp in app.consumer.assignment() if tp.topic == layout.completions}
        await direct.on_assigned(mine)

    @app.task  # type: ignore[untyped-decorator]
    async def route_direct() -> None:
        await direct.run()

    _ = (on_rebalanced, route_direct)
    return direct


def _side_input_agents(
    app: faust.App,
    settings: Settings,
    layout: TopicLayout,
    producers: Producers,
    handlers: dict[str, Handler],
    pipeline: BatchPipeline,
) -> None:
    """One agent per side input: a batch of events -> its handler -> one flush."""
    w = settings.worker
    side_within_s = max(w.batch_within_s, 0.1)
    takes = {  # agent name -> (topic, batch size, wait)
        "completions": (layout.completions, w.batch_max, side_within_s),
        "intensity": (layout.carbon_intensity, w.batch_max, side_within_s),
        "policy": (layout.policy, 100, 0.1),
    }
    for name, (topic, batch_max, within_s) in takes.items():
        handle = handlers[name]

        async def agent(
            stream: Any,
            handle: Handler = handle,
            batch_max: int = batch_max,
            within_s: float = within_s,
        ) -> None:
            async for events in stream.take_events(batch_max, within=within_s):
                sink = producers.shared_sink()
                checkpoint = handle(events_to_raw(events), sink)
                await sink.flush()
                if checkpoint:
                    await pipeline.checkpoint_written(checkpoint)
                # Only now does Faust ack the batch (and later commit its offsets).

        app.agent(app.topic(topic, **RAW_TOPIC), name=name)(agent)
