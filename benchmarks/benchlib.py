"""Shared plumbing of the control-plane benchmarks (not itself a benchmark).

Per-run settings and topic layout on the shared broker (unique prefix and app ids), which code
the workers run, worker and pass-through subprocesses, and an end-offset watcher that turns
"records on a topic over time" into a sustained rate plus CPU seconds of the processes doing
the work. The results log (``results_log``) and the bench workload of real trace requests
(``workload``) are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from results_log import command_line as command_line
from results_log import last_result as last_result
from results_log import machine_facts as machine_facts
from results_log import record as record
from workload import Workload as Workload
from workload import balanced_tenants as balanced_tenants
from workload import build_workload as build_workload
from workload import publish_policy as publish_policy
from workload import publish_policy_and_carbon as publish_policy_and_carbon
from workload import publish_requests as publish_requests

from streams.config import Settings
from streams.core.catalog import Catalog
from streams.kafka.admin import ensure_topics
from streams.kafka.clients import client_kwargs
from streams.kafka.topics import TopicLayout, TopicSpec, topic_specs

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LOG_DIR = REPO / "var" / "bench"
RAW_OUT = "raw-out"  # the pass-through's output topic (base name, gets the run prefix)
LOG_APPEND = {"message.timestamp.type": "LogAppendTime"}


# ---------------------------------------------------------------- settings and topics


def run_settings(
    partitions: int, run: str | None = None, dispatch_partitions: int | None = None, **worker: Any
) -> Settings:
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
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def use_code(ref: str | None) -> str:
    """Run workers on ``streams/`` (and ``schemas/``) as committed at ``ref`` (a snapshot under
    var/bench, put first on PYTHONPATH), on a directory holding ``streams/`` and ``schemas/``
    trees, or, with None, on the
    working tree. Returns a label for the results:
    others edit ``streams/`` while benchmarks run, so every result says what it measured."""
    global CODE_DIR
    if ref is not None and (Path(ref) / "streams").is_dir():
        CODE_DIR = Path(ref).resolve()  # a prepared tree (e.g. a patched snapshot to compare)
        return f"tree {CODE_DIR.name}"
    if ref is None:
        CODE_DIR = None
        dirty = git("status", "--porcelain", "--", "streams").splitlines()
        sha = git("rev-parse", "--short", "HEAD")
        return f"working tree at {sha}" + (
            f" + {len(dirty)} uncommitted streams/ files" if dirty else ""
        )
    sha = git("rev-parse", "--short", ref)
    dest = LOG_DIR / f"code-{sha}"
    if not (dest / "streams").exists() or not (dest / "schemas").exists():
        dest.mkdir(parents=True, exist_ok=True)
        # The worker reads the JSON Schemas at start (the parsers' fields), next to streams/.
        archive = subprocess.run(
            ["git", "archive", sha, "streams", "schemas"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    CODE_DIR = dest
    return f"commit {sha} ({ref})"


def worker_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    if CODE_DIR is not None:
        env["PYTHONPATH"] = str(CODE_DIR)
        env["GAR_DATA__DIR"] = str(settings.data.dir)
    w = settings.worker
    env.update(
        {
            "GAR_APP_ID": settings.app_id,
            "GAR_TOPICS__PREFIX": settings.topics.prefix,
            "GAR_TOPICS__PARTITIONS": str(settings.topics.partitions),
            "GAR_TOPICS__DISPATCH_PARTITIONS": str(settings.topics.dispatch_partition_count()),
            "GAR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "GAR_KAFKA__SESSION_TIMEOUT_MS": str(settings.kafka.session_timeout_ms),
            "GAR_WORKER__BATCH_MAX": str(w.batch_max),
            "GAR_WORKER__BATCH_WITHIN_S": str(w.batch_within_s),
            "GAR_INFLUX__ENABLED": "true" if settings.influx.enabled else "false",
            "GAR_INFLUX__URL": settings.influx.url,
        }
    )
    mac = settings.decision_mac
    if mac.key is not None:  # workers sign their decisions as a deployment would
        env["GAR_DECISION_MAC__KEY"] = mac.key.get_secret_value()
        env["GAR_DECISION_MAC__KEY_ID"] = mac.key_id
    if w.catalog_path is not None:
        env["GAR_WORKER__CATALOG_PATH"] = str(w.catalog_path)
    return env


def bench_specs(settings: Settings, catalog: Catalog) -> list[TopicSpec]:
    """The app's topics (requests and dispatch stamped with broker append time, so latency is
    measured on one clock) plus the pass-through's output topic."""
    lay = TopicLayout.from_settings(settings, catalog.model_names)
    stamped = {lay.requests, lay.decisions, *lay.dispatch.values()}
    specs = [
        replace(s, config={**s.config, **LOG_APPEND}) if s.name in stamped else s
        for s in topic_specs(settings, catalog.model_names)
    ]
    specs.append(
        TopicSpec(
            settings.topics.name(RAW_OUT),
            settings.topics.partitions,
            retention_ms=86_400_000,
            role="raw pass-through",
            config=LOG_APPEND,
        )
    )
    return specs


async def create_topics(settings: Settings, catalog: Catalog) -> None:
    await ensure_topics(settings, bench_specs(settings, catalog))


async def delete_run_topics(settings: Settings) -> None:
    """Remove every topic of this run (prefix) and of its app ids' changelogs. (Not
    ``streams.kafka.admin.delete_prefixed_topics``: this module also runs against ``--code``
    snapshots of trees older than it.)"""
    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka))
    await admin.start()
    try:
        names = [
            t
            for t in await admin.list_topics()
            if t.startswith((settings.topics.prefix, settings.app_id))
        ]
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


# ---------------------------------------------------------------- processes and watching


def spawn(args: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = (LOG_DIR / log_name).open("wb")
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)


# ``-P``: no current directory on sys.path. Without it, ``python -c`` run from the repository
# imports the working tree's ``streams`` ahead of PYTHONPATH, and a ``--code`` snapshot is
# silently not what runs (a pair of two commits would compare the working tree with itself).
_PYTHON_C = [sys.executable, "-P", "-c"]


def spawn_worker(settings: Settings, tag: str) -> subprocess.Popen[bytes]:
    """``gar worker`` through the interpreter, so a PYTHONPATH code snapshot takes precedence
    (checked: the snapshot's ``streams`` is the one a worker imports)."""
    env = worker_env(settings)
    if CODE_DIR is not None:
        probe = subprocess.run(
            [*_PYTHON_C, "import streams; print(streams.__file__)"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if not Path(probe.strip()).resolve().is_relative_to(CODE_DIR.resolve()):
            raise RuntimeError(f"worker would import {probe.strip()}, not the snapshot {CODE_DIR}")
    return spawn(
        [*_PYTHON_C, "from streams.cli import main; main()", "worker"],
        env,
        f"{settings.app_id}-{tag}.log",
    )


def check_alive(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """Raise at once when a process it spawned has exited (a worker that dies at start would
    otherwise leave a run waiting for its whole timeout)."""
    for p in procs:
        code = p.poll()
        if code is not None:
            raise RuntimeError(f"process {p.args!r} exited with {code}; see {LOG_DIR}")


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
    from streams.devenv.broker import KafkaBroker

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


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


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
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in (consumer.partitions_for_topic(t) or await partitions_of(consumer, t))
        ]
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
            for p in procs:  # a dead worker ends the wait at once, not after the timeout
                if not _alive(p):
                    raise RuntimeError(f"process {p.pid} exited before {topics} were done")
            if not is_ready and now >= next_ready_check:
                is_ready = bool(await ready())
                next_ready_check = now + 0.5
            if start is None and is_ready and n >= lo * target:
                start = (now, n, cpu, broker_cpu)
            if start is not None and n >= hi * target:
                if n == start[1]:
                    raise RuntimeError("window too short: raise the request count")
                return Window(
                    n - start[1],
                    now - start[0],
                    cpu - start[2],
                    rss,
                    None if broker is None else broker_cpu - start[3],
                )
            if n >= target and start is None:
                raise RuntimeError("all records done before the window opened (not ready?)")
            await asyncio.sleep(interval_s)
        raise TimeoutError(f"{topics}: fewer than {hi * target:.0f} records in {timeout_s}s")
    finally:
        await consumer.stop()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    parts = consumer.partitions_for_topic(topic) or await partitions_of(consumer, topic)
    return [TopicPartition(topic, p) for p in sorted(parts)]


async def scan_topics(
    settings: Settings, topics: Sequence[str], each: Callable[[list[Any]], None]
) -> dict[TopicPartition, int]:
    """Feed every record of ``topics`` (from the beginning to their current ends) to ``each``
    in fetched batches, without holding them; returns each partition's end offset."""
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings.kafka),
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 2**20,
    )
    await consumer.start()
    try:
        tps = [tp for t in topics for tp in await topic_partitions(consumer, t)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo:
            for tp, msgs in (await consumer.getmany(timeout_ms=500, max_records=20_000)).items():
                each(msgs)
                if msgs and msgs[-1].offset + 1 >= ends[tp]:
                    todo.discard(tp)
        return {tp: int(ends[tp]) for tp in tps}
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
