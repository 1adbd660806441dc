"""Shared plumbing of the control-plane benchmarks (not itself a benchmark).

Machine facts, results recording (``RESULTS.md`` + ``results.jsonl``), per-run topic layout on
the shared broker (unique prefix and app ids), a bench workload of real trace requests, worker
and pass-through subprocesses, and an end-offset watcher that turns "records on a topic over
time" into a sustained rate plus CPU seconds of the processes doing the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.partitioner import DefaultPartitioner

from streams.app.admin import ensure_topics
from streams.app.catalog import load_catalog
from streams.app.kafka import client_kwargs
from streams.app.topics import TopicLayout, TopicSpec, topic_specs
from streams.config import Settings
from streams.core.catalog import Catalog
from streams.core.inputs import Request

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_MD = BENCH_DIR / "RESULTS.md"
RESULTS_JSONL = BENCH_DIR / "results.jsonl"
LOG_DIR = REPO / "var" / "bench"
RAW_OUT = "raw-out"  # the pass-through's output topic (base name, gets the run prefix)
LOG_APPEND = {"message.timestamp.type": "LogAppendTime"}


# ---------------------------------------------------------------- machine facts and recording


def machine_facts() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load1, load5, load15 = os.getloadavg()
    return {
        "cpu": cpu,
        "cores": psutil.cpu_count(logical=True),
        "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_start": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "python": platform.python_version(),
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }


def command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    name = script.relative_to(REPO).as_posix() if script.is_relative_to(REPO) else sys.argv[0]
    argv = [name, *sys.argv[1:]]
    return ".venv/bin/python " + " ".join(argv)


def record(name: str, facts: dict[str, Any], result: dict[str, Any], body_md: str) -> None:
    """Print the JSON result line and append a dated section to RESULTS.md (+ results.jsonl)."""
    line = {"bench": name, "command": command_line(), "machine": facts, **result}
    print(json.dumps(line, sort_keys=False))
    with RESULTS_JSONL.open("a") as f:
        f.write(json.dumps(line) + "\n")
    la = facts["load_avg_start"]
    head = (f"\n## {name} — {facts['date_utc']} UTC\n\n"
            f"`{line['command']}`\n\n"
            f"Machine: {facts['cpu']}, {facts['cores']} cores, {facts['mem_gb']} GB, "
            f"load average at start {la[0]} / {la[1]} / {la[2]} (1/5/15 min), "
            f"Python {facts['python']}; broker and metrics store shared with the team."
            + (f" Code: {facts['code']}." if facts.get("code") else "") + "\n\n")
    if not RESULTS_MD.exists():
        RESULTS_MD.write_text("# Benchmark results\n\nAppended by the scripts in `benchmarks/` "
                              "(newest last). Ratios are to the raw pass-through measured in "
                              "the same run.\n")
    with RESULTS_MD.open("a") as f:
        f.write(head + body_md.rstrip() + "\n")


def last_result(name: str, **match: Any) -> dict[str, Any] | None:
    """The newest recorded result of bench ``name`` whose top-level fields equal ``match``."""
    if not RESULTS_JSONL.exists():
        return None
    found = None
    for line in RESULTS_JSONL.read_text().splitlines():
        with contextlib.suppress(ValueError):
            row = json.loads(line)
            if row.get("bench") == name and all(row.get(k) == v for k, v in match.items()):
                found = row
    return found


# ---------------------------------------------------------------- settings and topics


def run_settings(partitions: int, run: str | None = None, dispatch_partitions: int | None = None,
                 **worker: Any) -> Settings:
    """Settings of one bench run: own topic prefix, own app id, short group timeouts."""
    run = run or uuid.uuid4().hex[:6]
    base = Settings()
    d = base.model_dump()
    d["app_id"] = f"gar-bench-{run}"
    d["topics"]["prefix"] = f"bench.{run}."
    d["topics"]["partitions"] = partitions
    d["topics"]["dispatch_partitions"] = dispatch_partitions
    d["kafka"]["session_timeout_ms"] = 6_000
    d["worker"].update(worker)
    return Settings(**d)


def with_app_id(settings: Settings, app_id: str) -> Settings:
    d = settings.model_dump()
    d["app_id"] = app_id
    return Settings(**d)


# ---------------------------------------------------------------- which code runs

CODE_DIR: Path | None = None  # set by use_code(): workers import ``streams`` from here


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


def use_code(ref: str | None) -> str:
    """Run workers on ``streams/`` as committed at ``ref`` (a snapshot under var/bench, put
    first on PYTHONPATH), on a directory holding a ``streams/`` tree, or, with None, on the
    working tree. Returns a label for the results:
    others edit ``streams/`` while benchmarks run, so every result says what it measured."""
    global CODE_DIR
    if ref is not None and (Path(ref) / "streams").is_dir():
        CODE_DIR = Path(ref).resolve()  # a prepared tree (e.g. a patched snapshot to compare)
        return f"tree {CODE_DIR}"
    if ref is None:
        CODE_DIR = None
        dirty = git("status", "--porcelain", "--", "streams").splitlines()
        sha = git("rev-parse", "--short", "HEAD")
        return f"working tree at {sha}" + (f" + {len(dirty)} uncommitted streams/ files"
                                           if dirty else "")
    sha = git("rev-parse", "--short", ref)
    dest = LOG_DIR / f"code-{sha}"
    if not (dest / "streams").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "streams"], cwd=REPO,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    CODE_DIR = dest
    return f"commit {sha} ({ref})"


def worker_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    if CODE_DIR is not None:
        env["PYTHONPATH"] = str(CODE_DIR)
        env["GAR_DATA__SHARED_DATA_DIR"] = str(settings.data.shared_data_dir)
    w = settings.worker
    env.update({
        "GAR_APP_ID": settings.app_id,
        "GAR_TOPICS__PREFIX": settings.topics.prefix,
        "GAR_TOPICS__PARTITIONS": str(settings.topics.partitions),
        "GAR_TOPICS__DISPATCH_PARTITIONS": str(settings.topics.dispatch_partition_count()),
        "GAR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "GAR_KAFKA__SESSION_TIMEOUT_MS": str(settings.kafka.session_timeout_ms),
        "GAR_WORKER__BATCH_MAX": str(w.batch_max),
        "GAR_WORKER__BATCH_WITHIN_S": str(w.batch_within_s),
        "GAR_INFLUX__ENABLED": "true" if settings.influx.enabled else "false",
    })
    if w.catalog_path is not None:
        env["GAR_WORKER__CATALOG_PATH"] = str(w.catalog_path)
    return env


def bench_specs(settings: Settings, catalog: Catalog) -> list[TopicSpec]:
    """The app's topics (requests and dispatch stamped with broker append time, so latency is
    measured on one clock) plus the pass-through's output topic."""
    lay = TopicLayout.from_settings(settings, catalog.model_names)
    stamped = {lay.requests, lay.decisions, *lay.dispatch.values()}
    specs = [replace(s, config={**s.config, **LOG_APPEND}) if s.name in stamped else s
             for s in topic_specs(settings, catalog.model_names)]
    specs.append(TopicSpec(settings.topics.name(RAW_OUT), settings.topics.partitions,
                           retention_ms=86_400_000, role="raw pass-through", config=LOG_APPEND))
    return specs


async def create_topics(settings: Settings, catalog: Catalog) -> None:
    await ensure_topics(settings, bench_specs(settings, catalog))


async def delete_run_topics(settings: Settings) -> None:
    """Remove every topic of this run (prefix) and of its app ids' changelogs. (Not
    ``streams.app.admin.delete_prefixed_topics``: this module also runs against ``--code``
    snapshots of trees older than it.)"""
    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka))
    await admin.start()
    try:
        names = [t for t in await admin.list_topics()
                 if t.startswith((settings.topics.prefix, settings.app_id))]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


async def group_members(settings: Settings, group: str) -> tuple[str, int]:
    """(state, member count) of a consumer group."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka))
    await admin.start()
    try:
        resp = await admin.describe_consumer_groups([group])
    except GroupCoordinatorNotAvailableError:  # a fresh broker creates __consumer_offsets
        return "Unknown", 0
    finally:
        await admin.close()
    for r in resp:
        for g in r.groups:
            # (error_code, group_id, state, protocol_type, protocol, members, ...)
            return str(g[2]), len(g[5])
    return "Unknown", 0


# ---------------------------------------------------------------- workload


def balanced_tenants(n: int, partitions: int) -> list[str]:
    """``n`` tenant names spread evenly over ``partitions`` by Kafka's key partitioner, so
    per-partition load (and two-worker scaling) is not an artefact of key hashing."""
    part = DefaultPartitioner()
    ids = list(range(partitions))
    per: dict[int, list[str]] = {p: [] for p in ids}
    i = 0
    want = -(-n // partitions)
    while sum(len(v) for v in per.values()) < n:
        name = f"bt-{i:05d}"
        i += 1
        p = part(name.encode(), ids, ids)
        if len(per[p]) < want:
            per[p].append(name)
    out = [t for k in range(want) for p in ids for t in per[p][k:k + 1]]
    return out[:n]


@dataclass
class Workload:
    settings: Settings
    catalog: Catalog
    requests: list[Request]
    values: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value)

    @property
    def mean_bytes(self) -> float:
        return sum(len(v) for _, v in self.values) / max(len(self.values), 1)


def build_workload(settings: Settings, n: int, tenants: int = 100,
                   run_id: str | None = None) -> Workload:
    """``n`` real trace requests (the eval trace builder: real questions, diurnal arrivals,
    allow-lists) re-assigned round-robin to ``tenants`` partition-balanced tenants."""
    from streams.schema.records import encode, request_record
    from streams.tools.produce import trace_requests

    catalog = load_catalog(settings)
    names = balanced_tenants(tenants, settings.topics.partitions)
    reqs = trace_requests(settings, catalog, n, run_id=run_id or uuid.uuid4().hex[:6], days=1.0)
    reqs = [replace(r, tenant=names[i % len(names)]) for i, r in enumerate(reqs)]
    values = [(r.tenant.encode(), encode(request_record(r))) for r in reqs]
    return Workload(settings, catalog, reqs, values)


async def publish_policy_and_carbon(settings: Settings, wl: Workload) -> None:
    """The eval scenario's policy (as ``gar demo`` publishes it; its total budget spread over
    the bench tenants) and the real hourly carbon intensity for the trace's period."""
    from streams.app.demo import HOUR_MS, demo_policy
    from streams.tools.carbon_feed import carbon_dir, feed_carbon, merged_events
    from streams.tools.kafka_io import producer

    policy = demo_policy(settings, len(wl.requests), days=1.0)
    cfg = policy["config"]
    n_tenants = len({r.tenant for r in wl.requests})
    cfg["default_budget_g"] = sum(cfg["budgets_g"].values()) / max(n_tenants, 1)
    cfg["budgets_g"] = {}
    prod = producer(settings)
    await prod.start()
    try:
        await prod.send_and_wait(settings.topics.name(settings.topics.policy),
                                 orjson.dumps(policy), key=b"global")
    finally:
        await prod.stop()
    start_ms = min(r.ts_ms for r in wl.requests) // HOUR_MS * HOUR_MS - 2 * HOUR_MS
    hours = (max(r.ts_ms for r in wl.requests) - start_ms) // HOUR_MS + 2
    zones = sorted({r.zone for r in wl.catalog.regions})
    await feed_carbon(settings, merged_events(carbon_dir(settings), zones, start_ms=start_ms,
                                              end_ms=start_ms + hours * HOUR_MS))


async def publish_requests(settings: Settings, values: Sequence[tuple[bytes, bytes]]) -> float:
    """Publish as fast as the producer goes (pre-load); returns msg/s."""
    from streams.tools.kafka_io import producer

    topic = settings.topics.name(settings.topics.requests)
    prod = producer(settings, linger_ms=5, max_batch_size=512 * 1024)
    await prod.start()
    t0 = time.perf_counter()
    try:
        pending = []
        for key, value in values:
            pending.append(await prod.send(topic, value, key=key))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await prod.stop()
    return len(values) / (time.perf_counter() - t0)


# ---------------------------------------------------------------- processes and watching


def spawn(args: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = (LOG_DIR / log_name).open("wb")
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)


# ``-P``: no current directory on sys.path. Without it, ``python -c`` run from the repository
# imports the working tree's ``streams`` ahead of PYTHONPATH, and a ``--code`` snapshot is
# silently not what runs (every ``--code`` A/B pair before the sixth session compared the
# working tree with itself).
_PYTHON_C = [sys.executable, "-P", "-c"]


def spawn_worker(settings: Settings, tag: str) -> subprocess.Popen[bytes]:
    """``gar worker`` through the interpreter, so a PYTHONPATH code snapshot takes precedence
    (checked: the snapshot's ``streams`` is the one a worker imports)."""
    env = worker_env(settings)
    if CODE_DIR is not None:
        probe = subprocess.run([*_PYTHON_C, "import streams; print(streams.__file__)"],
                               env=env, capture_output=True, text=True, check=True).stdout
        if not Path(probe.strip()).resolve().is_relative_to(CODE_DIR.resolve()):
            raise RuntimeError(f"worker would import {probe.strip()}, not the snapshot {CODE_DIR}")
    return spawn([*_PYTHON_C, "from streams.cli import main; main()", "worker"], env,
                 f"{settings.app_id}-{tag}.log")


def stop(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


async def end_offsets(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> int:
    offs = await consumer.end_offsets(tps)
    return int(sum(offs.values()))


@dataclass
class Window:
    """A sustained-rate measurement between two sample points."""

    records: int
    seconds: float
    cpu_s: float
    rss_mb_max: float
    broker_cpu_s: float | None = None
    """CPU of the local broker over the same window (None: its process was not found)."""

    @property
    def rate_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_record(self) -> float:
        return 1e6 * self.cpu_s / self.records if self.records else 0.0

    @property
    def broker_cpu_us_per_record(self) -> float | None:
        if self.broker_cpu_s is None or not self.records:
            return None
        return 1e6 * self.broker_cpu_s / self.records


def broker_process(settings: Settings) -> psutil.Process | None:
    """The dev broker (``scripts/dev.sh``) by its pid file, if it runs here: on this box it
    shares the cores with the router, so its CPU per record is part of the cost."""
    from streams.devenv.kafka import KafkaBroker

    pid = KafkaBroker(settings.dev).process.pid()  # None unless it is our running broker
    try:
        return None if pid is None else psutil.Process(pid)
    except psutil.Error:
        return None


def cpu_s(procs: Sequence[psutil.Process]) -> float:
    """User + system CPU seconds of ``procs`` so far (a process gone counts 0)."""
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _rss_mb(procs: Sequence[psutil.Process]) -> float:
    best = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            best = max(best, p.memory_info().rss / 2**20)
    return best


async def watch(
    settings: Settings,
    topics: Sequence[str],
    target: int,
    pids: Sequence[int],
    *,
    ready: Any = None,
    lo: float = 0.1,
    hi: float = 0.9,
    timeout_s: float = 300.0,
    interval_s: float = 0.1,
) -> Window:
    """Poll the summed end offsets of ``topics`` until ``target`` records; the sustained window
    runs from the first sample at or above ``lo * target`` (and after ``ready()`` returned
    True, e.g. the consumer group is stable) to the first sample at or above ``hi * target``."""
    consumer = AIOKafkaConsumer(**client_kwargs(settings.kafka), group_id=None)
    await consumer.start()
    procs = [psutil.Process(p) for p in pids]
    broker = broker_process(settings)
    try:
        tps = [TopicPartition(t, p) for t in topics
               for p in (consumer.partitions_for_topic(t) or await partitions_of(consumer, t))]
        base = await end_offsets(consumer, tps)
        start: tuple[float, int, float, float] | None = None
        is_ready = ready is None
        next_ready_check = 0.0
        rss = 0.0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            n = await end_offsets(consumer, tps) - base
            now, cpu = time.monotonic(), cpu_s(procs)
            broker_cpu = cpu_s([broker]) if broker is not None else 0.0
            rss = max(rss, _rss_mb(procs))
            if not is_ready and now >= next_ready_check:
                is_ready = bool(await ready())
                next_ready_check = now + 0.5
            if start is None and is_ready and n >= lo * target:
                start = (now, n, cpu, broker_cpu)
            if start is not None and n >= hi * target:
                if n == start[1]:
                    raise RuntimeError("window too short: raise the request count")
                return Window(n - start[1], now - start[0], cpu - start[2], rss,
                              None if broker is None else broker_cpu - start[3])
            if n >= target and start is None:
                raise RuntimeError("all records done before the window opened (not ready?)")
            await asyncio.sleep(interval_s)
        raise TimeoutError(f"{topics}: fewer than {hi * target:.0f} records in {timeout_s}s")
    finally:
        await consumer.stop()


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return set(parts)
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no metadata for {topic}")


def stable_group(settings: Settings, group: str, members: int) -> Any:
    async def ready() -> bool:
        state, n = await group_members(settings, group)
        return state == "Stable" and n == members
    return ready
