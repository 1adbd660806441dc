"""Metrics to InfluxDB without blocking routing."""

from __future__ import annotations

import os
import secrets
import socket

from streams.config import InfluxSettings
from streams.metrics.measurements import (
    ALL_MEASUREMENTS,
    AccuracySample,
    BudgetSample,
    CandidateSample,
    CompletionSample,
    DatasetDecisions,
    DecisionSample,
    DualSample,
    IntensitySample,
    LagSample,
    Metrics,
)
from streams.metrics.sink import InfluxSink, LineSink
from streams.metrics.writer import MetricsWriter, WriterStats

__all__ = [
    "ALL_MEASUREMENTS",
    "AccuracySample",
    "BudgetSample",
    "CandidateSample",
    "CompletionSample",
    "DatasetDecisions",
    "DecisionSample",
    "DualSample",
    "InfluxSink",
    "IntensitySample",
    "LagSample",
    "LineSink",
    "Metrics",
    "MetricsWriter",
    "WriterStats",
    "build_metrics",
]


def default_worker_tag() -> str:
    # Container replicas all run as PID 1 and, on the host's network, share its name: the
    # random suffix keeps their series apart (two compose workers wrote one "vm-1" series).
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def build_metrics(settings: InfluxSettings, *, sink: LineSink | None = None) -> Metrics:
    """The one way the app gets its metrics: disabled -> no-op facade, else a started writer."""
    if not settings.enabled:
        return Metrics(None)
    worker = settings.worker_tag or default_worker_tag()
    writer = MetricsWriter(
        sink if sink is not None else InfluxSink(settings),
        buffer_max_points=settings.buffer_max_points,
        batch_size=settings.batch_size,
        flush_interval_ms=settings.flush_interval_ms,
        max_retries=settings.max_retries,
        retry_backoff_ms=settings.retry_backoff_ms,
        self_tags={"worker": worker},
    )
    return Metrics(writer, worker=worker)
