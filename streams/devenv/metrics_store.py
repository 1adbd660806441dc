"""The local metrics store: Debian's VictoriaMetrics, which accepts influxdb-client's v2 writes.

Writes: ``POST /api/v2/write`` (line protocol; metric name = ``<measurement>_<field>``).
Reads:  PromQL ``/api/v1/query`` / ``/api/v1/query_range``, raw ``/api/v1/export``.
Flags chosen for tests and replays of historical traces: new points are queryable at once
(``-search.latencyOffset=0s``, no response cache) and old timestamps are kept (100y retention).
Call ``force_flush`` (``/internal/force_flush``) after writing and before asserting on reads.
"""

from __future__ import annotations

import shutil
import urllib.request

from streams.config import DevSettings
from streams.devenv.health import ensure_port_free, http_ok
from streams.devenv.process import DevProcessError, ManagedProcess
from streams.devenv.service import LocalService


class MetricsStore(LocalService):
    def __init__(self, dev: DevSettings) -> None:
        self.dev = dev
        self.home = dev.state_dir / "victoria-metrics"
        self.data_dir = self.home / "data"
        self.process = ManagedProcess(
            name="metrics",
            pid_file=self.home / "victoria-metrics.pid",
            log_file=self.home / "victoria-metrics.log",
            marker=f"-storageDataPath={self.data_dir}",
        )

    @property
    def url(self) -> str:
        return f"http://{self.dev.host}:{self.dev.metrics_port}"

    @property
    def address(self) -> str:
        return self.url

    def start(self, timeout_s: float | None = None) -> None:
        if not self.process.is_running():
            ensure_port_free(self.dev.host, self.dev.metrics_port)
            binary = shutil.which(self.dev.metrics_bin)
            if binary is None:
                raise DevProcessError(
                    f"{self.dev.metrics_bin} not found: run scripts/bootstrap.sh "
                    "(apt-get install victoria-metrics)"
                )
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.process.spawn([
                binary,
                f"-httpListenAddr={self.dev.host}:{self.dev.metrics_port}",
                f"-storageDataPath={self.data_dir}",
                "-retentionPeriod=100y",
                "-search.latencyOffset=0s",
                "-search.disableCache",
                "-loggerLevel=WARN",
            ])  # fmt: skip
        self.process.wait_until(self.healthy, timeout_s or self.dev.start_timeout_s)

    def healthy(self) -> bool:
        return http_ok(f"{self.url}/health")

    def force_flush(self) -> None:
        """Make just-written points visible to queries."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10) as resp:
            resp.read()
