"""One configuration object for the whole control plane.

Built once at the entry point (CLI) from environment variables with the ``GAR_`` prefix
(nested sections use ``__``, e.g. ``GAR_KAFKA__BOOTSTRAP_SERVERS``) and passed down.
Secrets are ``SecretStr`` and never logged. Defaults never depend on where the package is
installed: state goes to the user's state directory (``$XDG_STATE_HOME/gar-streams``), the
service binaries to the user's cache directory, and the data to the sample shipped in the
package unless ``GAR_DATA__DIR`` names the full data.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "GAR_"
PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_DATA_DIR = PACKAGE_DIR / "resources" / "sample"
# Variables read by the project's scripts and tests, not by Settings (no warning for them).
SCRIPT_ENV = frozenset({"GAR_SKIP_BOOTSTRAP", "GAR_VENV", "GAR_SHARED_DATA", "GAR_INFLUX_TOKEN",
                        "GAR_DEBUG"})  # fmt: skip
SCRIPT_ENV_PREFIXES = ("GAR_FAULTS_",)


def _user_dir(xdg: str, fallback: str) -> Path:
    base = os.environ.get(xdg) or str(Path.home() / fallback)
    return Path(base) / "gar-streams"


def user_state_dir() -> Path:
    """``$XDG_STATE_HOME/gar-streams`` (default ``~/.local/state/gar-streams``)."""
    return _user_dir("XDG_STATE_HOME", ".local/state")


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gar-streams`` (default ``~/.cache/gar-streams``)."""
    return _user_dir("XDG_CACHE_HOME", ".cache")


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:19092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000


class TopicSettings(BaseModel):
    # Every topic name starts with it. A prefix without a trailing separator gets a "." (so
    # "demo.1fae13" and "demo.1fae13." name the same topics).
    prefix: str = "gar."
    requests: str = "requests"
    completions: str = "completions"
    carbon_intensity: str = "carbon-intensity"
    policy: str = "policy"
    decisions: str = "decisions"
    # Routing-context records (decisions.v2 reference them by digest); never compacted.
    contexts: str = "contexts"
    dispatch_prefix: str = "dispatch."
    dead_letter: str = "dead-letter"
    partitions: int = 4
    # Partitions of each dispatch.<model> topic when the router creates it (None: `partitions`).
    # Size it to the serving fleet's consumers, not to the router: dispatch is keyed by request
    # id, so any count works and a re-delivered dispatch still lands on the same partition.
    dispatch_partitions: int | None = Field(default=None, ge=1)
    # Copies of every topic the app creates, and how many must have a write before it is
    # acknowledged (producers use acks=all). Single-broker defaults; a cluster: 3 and 2.
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _isr_fits(self) -> TopicSettings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"min_insync_replicas ({self.min_insync_replicas}) exceeds replication_factor "
                f"({self.replication_factor}): no write could ever be acknowledged"
            )
        return self

    def dispatch_partition_count(self) -> int:
        """Partitions of each dispatch topic: ``dispatch_partitions``, else ``partitions``."""
        return self.dispatch_partitions or self.partitions

    # `compression.type` of the decisions topic when the router creates it: the broker stores the
    # audit log compressed whatever the producer sends ("producer" = as sent). See
    # worker.decisions_compression for where the compressing happens.
    decisions_compression_type: Literal[
        "producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"
    ] = "zstd"

    @field_validator("prefix")
    @classmethod
    def _separated(cls, v: str) -> str:
        return v if not v or v[-1] in "._-" else v + "."

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"


class InfluxSettings(BaseModel):
    url: str = "http://127.0.0.1:18086"
    # InfluxDB 2.x: an API token; InfluxDB 1.8 (the local store): "user:password" or anything
    # while its auth is off.
    token: SecretStr = SecretStr("dev-token")
    org: str = "gar"  # ignored by InfluxDB 1.8
    # InfluxDB 2.x: the bucket name; InfluxDB 1.8: "<database>/<retention policy>".
    bucket: str = "gar/autogen"
    enabled: bool = True
    buffer_max_points: int = 50_000
    flush_interval_ms: int = 1_000
    batch_size: int = 5_000
    timeout_ms: int = 5_000
    max_retries: int = 3
    retry_backoff_ms: int = 200
    worker_tag: str = ""  # empty: "<hostname>-<pid>-<4 random hex>"


class DevSettings(BaseModel):
    """Where the embedded local broker and metrics store live."""

    # Local services' data and logs, the demo's logs and the worker's Faust data directory.
    state_dir: Path = Field(default_factory=user_state_dir)
    cache_dir: Path = Field(default_factory=user_cache_dir)  # Kafka jars, influxd
    kafka_version: str = "4.1.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    metrics_port: int = 18086  # the InfluxDB HTTP API
    # The replicated cluster (`gar dev up --service cluster`): node n (1..kafka_cluster_size)
    # listens on kafka_cluster_port + 2(n-1), its controller on the port after it.
    kafka_cluster_port: int = 19100
    kafka_cluster_size: int = Field(default=3, ge=1, le=9)
    host: str = "127.0.0.1"
    kafka_heap_mb: int = 512
    java_bin: str = "java"
    maven_bin: str = "mvn"
    go_bin: str = "go"  # builds InfluxDB from the Go module proxy into cache_dir
    influxdb_version: str = "1.8.3"
    influxdb_database: str = "gar"
    start_timeout_s: float = 90.0
    stop_timeout_s: float = 30.0


class DataSettings(BaseModel):
    """The public data the demo, tools and evaluation read (layout: docs/data.md). Default: the
    small licensed sample shipped in the package; point ``GAR_DATA__DIR`` (or ``--data``) at
    the full data."""

    dir: Path = Field(
        default=SAMPLE_DATA_DIR, validation_alias=AliasChoices("dir", "shared_data_dir")
    )

    @property
    def is_sample(self) -> bool:
        return self.dir.resolve() == SAMPLE_DATA_DIR.resolve()


class WorkerSettings(BaseModel):
    """The Faust worker (streams/app): batching, dedupe, state publication."""

    policy: str = "gar-pd"  # a registered policy name (checked when the worker starts)
    catalog_path: Path | None = None  # None: the packaged default catalog
    batch_max: int = 1_000  # stream.take() size: bigger batches amortise Faust's per-batch cost
    batch_within_s: float = 0.02  # flush a partial batch after this long (bounds latency)
    # Direct hot path: after a fetch returned a short batch, keep collecting for up to this
    # long (streams/app/direct.py). 0 = route every fetch at once.
    batch_linger_ms: float = 0.0
    # Direct hot path: while the previous batch's decisions are not acknowledged, keep adding
    # fetched requests to the next batch (up to batch_max, at most batch_within_s).
    group_commit: bool = True
    control_partitions: int = 1  # carbon-intensity and policy: tiny volume, total order
    # Routed batches write their tenant states, dedupe ids and marks at most this often (the
    # first batch after the interval carries everything since; 0 = every batch). Between
    # checkpoints a crash costs a longer recovery scan and more re-dispatch, never a decision
    # (docs/architecture.md). Off: 100 ms cut the worker's CPU under paced load by 2-5%, not
    # separable from the noise in latency (measured, docs/architecture.md).
    checkpoint_interval_ms: int = 0
    dedupe_window_ms: int = 3_600_000  # request ids remembered this long by arrival time
    dedupe_max_per_partition: int = 50_000  # ~270 B each in memory (RSS)
    estimator_publish_interval_ms: int = 1_000
    store: str = "memory://"  # tables rebuild from their changelogs on start
    # "direct": requests read by a plain aiokafka consumer on the partitions Faust assigned
    # (docs/architecture.md); "faust": a Faust agent with stream.take_events.
    hot_path: Literal["direct", "faust"] = "direct"
    # Faust's data directory (None: <dev.state_dir>/faust/<app_id>). With the memory store it
    # holds no data, but Faust creates it at start, so it must be writable.
    data_dir: Path | None = None
    # Faust's web server: the live status page /status (streams/app/status.py) and the probes
    # /healthz and /readyz (streams/app/health.py). Off by default. Port 0 binds any free port
    # and writes it to <data_dir>/web-port, so workers sharing a host's network do not collide;
    # `gar probe` finds it there.
    web_enabled: bool = False
    web_bind: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    log_level: str = "warning"
    # Collector settings of `gar worker` (streams/app/gc_tuning.py): young-generation threshold
    # (CPython's default 700; 0 keeps it) and freezing start-up/recovery survivors.
    gc_gen0_threshold: int = 10_000
    gc_freeze_after_recovery: bool = True
    # At start, routing waits until the policy and carbon-intensity records already on their
    # topics are applied (streams/app/control_gate.py); after this long it routes anyway, with
    # a warning. 0 = do not wait.
    control_catchup_timeout_s: float = 60.0
    # Producer-side compression of the decisions records (~3.6 KB each, most of the bytes the
    # router writes). Off by default: the topic is created with compression.type=zstd
    # (topics.decisions_compression_type), so the broker stores it ~17x smaller, and the
    # worker's one Python thread, the bottleneck, saves 5-12 us per decision (measured,
    # docs/topics.md). Set "zstd" when the network to the brokers is the scarcer resource.
    decisions_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "none"
    # A context unchanged this long is written again, so every decision's context record is
    # at most this old on the contexts topic (retention: the decisions' plus this; the audit
    # reads contexts back from its range's start minus this).
    context_republish_s: float = 3_600.0
    # Fault injection for tests: exit the process (as kill -9 would) right after the decisions of
    # route batch N are acked, before their dispatch and checkpoint. 0 = off.
    fault_exit_after_decisions_batch: int = 0


class DecisionMacSettings(BaseModel):
    """The key of the decisions' tamper-evident chain (the decisions.v2 ``mac``, HMAC-SHA256).
    Only the routers and the auditors hold it; it is never logged. Rotation: a new ``key``
    under a new ``key_id`` on the routers, the old ``<id>:<key>`` into ``retired_keys`` of the
    auditors until its records are past retention (docs/operations.md)."""

    key: SecretStr | None = None  # None: records are written with "mac": null (a warning)
    key_id: str = Field(default="k1", pattern=r"^[A-Za-z0-9._-]{1,16}$")
    # Comma-separated "<id>:<key>" the audit also accepts (records signed before a rotation).
    retired_keys: SecretStr | None = None

    def keyring(self) -> dict[str, bytes]:
        """Key id -> key bytes of every key the audit accepts."""
        ring: dict[str, bytes] = {}
        if self.retired_keys is not None:
            for item in self.retired_keys.get_secret_value().split(","):
                key_id, sep, key = item.strip().partition(":")
                if sep and key_id:
                    ring[key_id] = key.encode()
        if self.key is not None:
            ring[self.key_id] = self.key.get_secret_value().encode()
        return ring


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GAR_", env_nested_delimiter="__", extra="ignore")

    # The Faust app id: the workers' consumer group and the start of their changelog topics'
    # names. Empty: "<topics.prefix>router", so every topic of a deployment, changelogs too,
    # starts with its one prefix (``gar topics list|delete --prefix``).
    app_id: str = ""
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    dev: DevSettings = Field(default_factory=DevSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    decision_mac: DecisionMacSettings = Field(default_factory=DecisionMacSettings)

    def worker_data_dir(self) -> Path:
        """Faust's data directory: ``worker.data_dir``, else under the state directory."""
        return self.worker.data_dir or self.dev.state_dir / "faust" / self.app_id

    @model_validator(mode="after")
    def _app_id_from_prefix(self) -> Settings:
        if not self.app_id:
            self.app_id = f"{self.topics.prefix}router"
        return self


class SettingsError(ValueError):
    """A ``GAR_*`` variable has a value Settings cannot use; the message names the variable."""


def env_name(loc: tuple[str | int, ...]) -> str:
    """``("kafka", "security_protocol")`` -> ``GAR_KAFKA__SECURITY_PROTOCOL``."""
    return ENV_PREFIX + "__".join(str(p).upper() for p in loc)


def settings_env_names() -> set[str]:
    """Every variable Settings reads (nested sections joined by ``__``)."""

    def walk(model: type[BaseModel], loc: tuple[str, ...]) -> Iterator[str]:
        for name, info in model.model_fields.items():
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                yield from walk(ann, (*loc, name))
            else:
                yield env_name((*loc, name))
                alias = info.validation_alias
                if isinstance(alias, AliasChoices):
                    yield from (env_name((*loc, str(a))) for a in alias.choices)

    return set(walk(Settings, ()))


def unknown_env(environ: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """``GAR_*`` variables no setting reads, each with the closest valid name (or None)."""
    env = os.environ if environ is None else environ
    valid = settings_env_names()
    sections = {v.split("__")[0] + "__" for v in valid if "__" in v}
    out: list[tuple[str, str | None]] = []
    for raw in sorted(env):
        name = raw.upper()
        if not name.startswith(ENV_PREFIX) or name in valid or name in SCRIPT_ENV:
            continue
        if name.startswith(SCRIPT_ENV_PREFIXES) or name in sections:
            continue
        close = difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.6)
        out.append((raw, close[0] if close else None))
    return out


def _describe(err: Any) -> str:
    loc = tuple(p for p in err["loc"] if p not in ("function-after",))
    value = err.get("input")
    shown = "***" if any("password" in str(p) or "token" in str(p) for p in loc) else value
    return f"{env_name(loc)}={shown}: {err['msg']}"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (``overrides``: keyword arguments that win over it).
    Raises ``SettingsError`` naming the variable when a value is not usable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError("; ".join(_describe(e) for e in exc.errors())) from None
