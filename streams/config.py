"""One configuration object for the whole control plane.

Built once at the entry point (CLI) from environment variables with the ``GAR_`` prefix
(nested sections use ``__``, e.g. ``GAR_KAFKA__BOOTSTRAP_SERVERS``) and passed down.
Secrets are ``SecretStr`` and never logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


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
    prefix: str = "gar."
    requests: str = "requests"
    completions: str = "completions"
    carbon_intensity: str = "carbon-intensity"
    policy: str = "policy"
    decisions: str = "decisions"
    dispatch_prefix: str = "dispatch."
    dead_letter: str = "dead-letter"
    partitions: int = 4
    # Partitions of each dispatch.<model> topic when the router creates it (None: `partitions`).
    # Size it to the serving fleet's consumers, not to the router: dispatch is keyed by request
    # id, so any count works and a re-delivered dispatch still lands on the same partition.
    dispatch_partitions: int | None = Field(default=None, ge=1)
    replication_factor: int = 1

    def dispatch_partition_count(self) -> int:
        """Partitions of each dispatch topic: ``dispatch_partitions``, else ``partitions``."""
        return self.dispatch_partitions or self.partitions
    # `compression.type` of the decisions topic when the router creates it: the broker stores the
    # audit log compressed whatever the producer sends ("producer" = as sent). See
    # worker.decisions_compression for where the compressing happens.
    decisions_compression_type: Literal["producer", "uncompressed", "gzip", "snappy", "lz4",
                                        "zstd"] = "zstd"

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"


class InfluxSettings(BaseModel):
    url: str = "http://127.0.0.1:18428"
    token: SecretStr = SecretStr("dev-token")
    org: str = "gar"
    bucket: str = "gar"
    enabled: bool = True
    buffer_max_points: int = 50_000
    flush_interval_ms: int = 1_000
    batch_size: int = 5_000
    timeout_ms: int = 5_000
    max_retries: int = 3
    retry_backoff_ms: int = 200
    worker_tag: str = ""  # empty: "<hostname>-<pid>"


class DevSettings(BaseModel):
    """Where the embedded local broker and metrics store live."""

    state_dir: Path = REPO_ROOT / "var"
    cache_dir: Path = REPO_ROOT / ".cache"
    kafka_version: str = "4.1.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    metrics_port: int = 18428
    host: str = "127.0.0.1"
    kafka_heap_mb: int = 512
    java_bin: str = "java"
    maven_bin: str = "mvn"
    metrics_bin: str = "victoria-metrics"
    start_timeout_s: float = 90.0
    stop_timeout_s: float = 30.0


class DataSettings(BaseModel):
    shared_data_dir: Path = REPO_ROOT.parent / "shared" / "data"


class WorkerSettings(BaseModel):
    """The Faust worker (streams/app): batching, dedupe, state publication."""

    policy: str = "gar-pd"
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
    dedupe_window_ms: int = 3_600_000  # event-time window of remembered request ids
    dedupe_max_per_partition: int = 50_000  # ~270 B each in memory (RSS)
    estimator_publish_interval_ms: int = 1_000
    store: str = "memory://"  # tables rebuild from their changelogs on start
    # "direct": requests read by a plain aiokafka consumer on the partitions Faust assigned
    # (docs/architecture.md); "faust": a Faust agent with stream.take_events.
    hot_path: Literal["direct", "faust"] = "direct"
    web_enabled: bool = False
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
    # Fault injection for tests: exit the process (as kill -9 would) right after the decisions of
    # route batch N are acked, before their dispatch and checkpoint. 0 = off.
    fault_exit_after_decisions_batch: int = 0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GAR_", env_nested_delimiter="__", extra="ignore")

    app_id: str = "gar-router"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    dev: DevSettings = Field(default_factory=DevSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)


def load_settings() -> Settings:
    return Settings()
