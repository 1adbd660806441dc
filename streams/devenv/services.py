"""Start/stop/status of the local services together (what ``gar dev`` and scripts/dev.sh run)."""

from __future__ import annotations

from collections.abc import Iterable

from streams.config import DevSettings
from streams.devenv.kafka import KafkaBroker
from streams.devenv.metrics_store import MetricsStore
from streams.devenv.service import LocalService
from streams.devenv.status import ServiceStatus

SERVICE_NAMES = ("kafka", "metrics")


def services(dev: DevSettings, only: Iterable[str] = SERVICE_NAMES) -> list[LocalService]:
    wanted = set(only)
    unknown = wanted - set(SERVICE_NAMES)
    if unknown:
        raise ValueError(f"unknown services {sorted(unknown)}; known: {SERVICE_NAMES}")
    every: list[LocalService] = [KafkaBroker(dev), MetricsStore(dev)]
    return [service for service in every if service.process.name in wanted]


def up(
    dev: DevSettings, *, clean: bool = False, only: Iterable[str] = SERVICE_NAMES
) -> list[ServiceStatus]:
    """Start the services (running ones are left alone unless ``clean``) and wait for health."""
    selected = services(dev, only)
    for service in selected:
        if clean:
            service.stop()
            service.clean()
        service.start()
    return [service.status() for service in selected]


def down(
    dev: DevSettings, *, clean: bool = False, only: Iterable[str] = SERVICE_NAMES
) -> list[str]:
    """Stop (graceful, then kill); ``clean`` also deletes their data. Returns stopped names."""
    stopped = []
    for service in services(dev, only):
        if service.stop():
            stopped.append(service.process.name)
        if clean:
            service.clean()
    return stopped


def status(dev: DevSettings, only: Iterable[str] = SERVICE_NAMES) -> list[ServiceStatus]:
    return [service.status() for service in services(dev, only)]
