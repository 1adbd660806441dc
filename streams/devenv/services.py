"""Start/stop/status of both local services together (what ``gar dev`` and scripts/dev.sh run)."""

from __future__ import annotations

from streams.config import DevSettings
from streams.devenv.kafka import KafkaBroker
from streams.devenv.metrics_store import MetricsStore
from streams.devenv.status import ServiceStatus

SERVICE_NAMES = ("kafka", "metrics")


def up(dev: DevSettings, *, clean: bool = False) -> list[ServiceStatus]:
    """Start broker and store (already running ones are left alone unless ``clean``)."""
    services = (KafkaBroker(dev), MetricsStore(dev))
    for service in services:
        if clean:
            service.stop()
            service.clean()
        service.start()
    return [service.status() for service in services]


def down(dev: DevSettings, *, clean: bool = False) -> list[str]:
    """Stop both (graceful, then kill); ``clean`` also deletes their data. Returns stopped names."""
    stopped = []
    for service in (KafkaBroker(dev), MetricsStore(dev)):
        if service.stop():
            stopped.append(service.process.name)
        if clean:
            service.clean()
    return stopped


def status(dev: DevSettings) -> list[ServiceStatus]:
    return [KafkaBroker(dev).status(), MetricsStore(dev).status()]
