"""Start/stop/status of the local services together (what ``gar dev`` and scripts/dev.sh run)."""

from __future__ import annotations

from collections.abc import Iterable

from streams.config import DevSettings
from streams.devenv.broker import KafkaBroker
from streams.devenv.cluster import KafkaCluster
from streams.devenv.influxdb import InfluxStore
from streams.devenv.service import LocalService
from streams.devenv.status import ServiceStatus

SERVICE_NAMES = ("kafka", "metrics")  # what `gar dev up` starts when no service is named
# The replicated cluster is started only when asked for (three JVMs of ~0.5 GB heap each).
ALL_SERVICE_NAMES = (*SERVICE_NAMES, "cluster")


def services(dev: DevSettings, only: Iterable[str] = SERVICE_NAMES) -> list[LocalService]:
    wanted = set(only)
    unknown = wanted - set(ALL_SERVICE_NAMES)
    if unknown:
        raise ValueError(f"unknown services {sorted(unknown)}; known: {ALL_SERVICE_NAMES}")
    every: list[LocalService] = [KafkaBroker(dev), InfluxStore(dev), KafkaCluster(dev)]
    return [service for service in every if service.name in wanted]


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
    return [state for service in selected for state in service.statuses()]


def down(
    dev: DevSettings, *, clean: bool = False, only: Iterable[str] = SERVICE_NAMES
) -> list[str]:
    """Stop (graceful, then kill); ``clean`` also deletes their data. Returns stopped names."""
    stopped = []
    for service in services(dev, only):
        if service.stop():
            stopped.append(service.name)
        if clean:
            service.clean()
    return stopped


def status(dev: DevSettings, only: Iterable[str] = SERVICE_NAMES) -> list[ServiceStatus]:
    return [state for service in services(dev, only) for state in service.statuses()]
