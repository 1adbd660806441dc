"""Local dev services: a real Kafka 4.x KRaft broker and a VictoriaMetrics store, on 127.0.0.1.

Shared team instances use the default ``DevSettings`` (ports 19092/19093 and 18428, state in
``var/``). Fault tests start PRIVATE instances with their own ``DevSettings`` (other ports and
state dir), e.g. ``KafkaBroker(private_dev_settings(tmp_path)).start()``; never stop the shared
ones.
"""

from streams.devenv.kafka import KafkaBroker, render_server_properties
from streams.devenv.metrics_store import MetricsStore
from streams.devenv.ports import free_port, private_dev_settings
from streams.devenv.process import DevProcessError
from streams.devenv.service import LocalService
from streams.devenv.services import SERVICE_NAMES, down, services, status, up
from streams.devenv.status import ServiceStatus

__all__ = [
    "SERVICE_NAMES",
    "DevProcessError",
    "KafkaBroker",
    "LocalService",
    "MetricsStore",
    "ServiceStatus",
    "down",
    "free_port",
    "private_dev_settings",
    "render_server_properties",
    "services",
    "status",
    "up",
]
