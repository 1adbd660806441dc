"""The local metrics store: a real InfluxDB OSS 1.8 server, built from source with Go.

Layout (all under ``DevSettings``):
  ``<cache_dir>/influxdb-<version>/bin/influxd``   built once by ``go install`` (Go module proxy)
  ``<state_dir>/influxdb/influxdb.conf``            rewritten on every start from the settings
  ``<state_dir>/influxdb/{meta,data,wal}/``         the store; kept across restarts unless cleaned
  ``<state_dir>/influxdb/influxdb.pid|.log``        PID file and server output

InfluxDB 1.8 serves the v2 API the project uses: ``/api/v2/write`` (bucket ``<db>/<rp>``, the
org ignored, the token ``user:password`` or anything while auth is off) and Flux on
``/api/v2/query``, plus ``/health``. Why 1.8 and not 2.x: README, "Metrics store".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

from streams.config import DevSettings
from streams.devenv.health import ensure_port_free, http_ok
from streams.devenv.process import DevProcessError, ManagedProcess
from streams.devenv.service import LocalService

INFLUXD_MODULE = "github.com/influxdata/influxdb/cmd/influxd"


def render_influxdb_conf(dev: DevSettings, home: Path) -> str:
    """influxd config for one private local server: loopback only, no usage reporting, Flux on."""
    return f"""# written by gar dev up on every start; edit DevSettings instead
reporting-disabled = true
# the backup/restore RPC listener: any free loopback port, so instances never collide
bind-address = "{dev.host}:0"

[meta]
  dir = "{home / "meta"}"

[data]
  dir = "{home / "data"}"
  wal-dir = "{home / "wal"}"
  query-log-enabled = false
  index-version = "tsi1"

[http]
  bind-address = "{dev.host}:{dev.metrics_port}"
  auth-enabled = false
  flux-enabled = true
  log-enabled = false
  write-tracing = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[logging]
  level = "warn"
"""


class InfluxStore(LocalService):
    """Build, configure, start, health-check and stop one local InfluxDB described by ``dev``."""

    def __init__(self, dev: DevSettings) -> None:
        self.dev = dev
        self.home = dev.state_dir / "influxdb"
        self.data_dir = self.home / "data"
        self.config_file = self.home / "influxdb.conf"
        self.build_dir = dev.cache_dir / f"influxdb-{dev.influxdb_version}"
        self.binary = self.build_dir / "bin" / "influxd"
        self.process = ManagedProcess(
            name="metrics",
            pid_file=self.home / "influxdb.pid",
            log_file=self.home / "influxdb.log",
            marker=str(self.config_file),
        )

    @property
    def url(self) -> str:
        return f"http://{self.dev.host}:{self.dev.metrics_port}"

    @property
    def address(self) -> str:
        return self.url

    # -- binary ---------------------------------------------------------------------------
    def fetch_binary(self) -> Path:
        """``go install`` influxd into the cache (no-op when built). About a minute cold."""
        done = self.build_dir / ".complete"
        if done.exists() and self.binary.exists():
            return self.binary
        go = shutil.which(self.dev.go_bin)
        if go is None:
            raise DevProcessError(f"{self.dev.go_bin} not found: run scripts/bootstrap.sh")
        partial = self.build_dir / "bin.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        env = {
            **os.environ,
            "GOBIN": str(partial),
            "GOFLAGS": "-buildvcs=false -modcacherw",
            "GOTOOLCHAIN": "local",
        }
        cmd = [go, "install", f"{INFLUXD_MODULE}@v{self.dev.influxdb_version}"]
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0 or not (partial / "influxd").exists():
            raise DevProcessError(f"go install influxd failed:\n{result.stderr[-3000:]}")
        shutil.rmtree(self.binary.parent, ignore_errors=True)
        partial.rename(self.binary.parent)
        done.write_text(self.dev.influxdb_version + "\n")
        return self.binary

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout_s: float | None = None) -> None:
        """Start in the background, wait for ``/health``, create the database (idempotent)."""
        if not self.process.is_running():
            ensure_port_free(self.dev.host, self.dev.metrics_port)
            binary = self.fetch_binary()
            for sub in ("meta", "data", "wal"):
                (self.home / sub).mkdir(parents=True, exist_ok=True)
            self.config_file.write_text(render_influxdb_conf(self.dev, self.home))
            self.process.spawn([str(binary), "-config", str(self.config_file)])
        self.process.wait_until(self.healthy, timeout_s or self.dev.start_timeout_s)
        self.create_database(self.dev.influxdb_database)

    def healthy(self) -> bool:
        return http_ok(f"{self.url}/health")

    def create_database(self, name: str) -> None:
        """``CREATE DATABASE`` (a no-op when it exists); its default retention policy,
        ``autogen``, keeps points forever, so replays of old traces are never dropped."""
        body = urllib.parse.urlencode({"q": f'CREATE DATABASE "{name}"'}).encode()
        req = urllib.request.Request(f"{self.url}/query", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
