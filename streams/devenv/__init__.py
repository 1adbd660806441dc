"""Local dev services: a real Kafka 4.x KRaft broker and a real InfluxDB, on 127.0.0.1, and on
request a replicated three-node Kafka cluster (``KafkaCluster``).

Shared team instances use the default ``DevSettings`` (ports 19092/19093 and 18086, state in
``var/``). Fault tests start PRIVATE instances with their own ``DevSettings`` (other ports and
state dir), e.g. ``KafkaBroker(private_dev_settings(tmp_path)).start()``; never stop the shared
ones.
"""

from streams.devenv.broker import KafkaBroker, NodeSpec, render_server_properties
from streams.devenv.cluster import KafkaCluster, cluster_ports
from streams.devenv.influxdb import InfluxStore, render_influxdb_conf
from streams.devenv.ports import free_port, private_dev_settings
from streams.devenv.process import DevProcessError
from streams.devenv.service import LocalService
from streams.devenv.services import ALL_SERVICE_NAMES, SERVICE_NAMES, down, services, status, up
from streams.devenv.status import ServiceStatus

__all__ = [
    "ALL_SERVICE_NAMES",
    "SERVICE_NAMES",
    "DevProcessError",
    "InfluxStore",
    "KafkaBroker",
    "KafkaCluster",
    "LocalService",
    "NodeSpec",
    "ServiceStatus",
    "cluster_ports",
    "down",
    "free_port",
    "private_dev_settings",
    "render_influxdb_conf",
    "render_server_properties",
    "services",
    "status",
    "up",
]
