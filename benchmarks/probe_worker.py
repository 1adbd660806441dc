"""Rough probes of one worker on the local broker (not a test, not the formal benchmark).

    .venv/bin/python benchmarks/probe_worker.py throughput 30000     # pre-published backlog
    .venv/bin/python benchmarks/probe_worker.py latency 500 10       # rate/s, seconds

throughput: publishes N real requests (eval trace), starts ``gar worker`` and reports decisions/s
from first to last decision seen on the decisions topic, worker CPU per decision and RSS.
latency: after warm-up, publishes at a fixed rate and reports produce -> dispatch-seen p50/p99.
Each run uses its own topic prefix and app id (``demo_settings``). Honour ``GAR_*`` env vars
(e.g. ``GAR_WORKER__HOT_PATH=faust``, ``GAR_INFLUX__ENABLED=false``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.config import Settings
from streams.core.catalog import Catalog
from streams.kafka.admin import ensure_topics
from streams.kafka.topics import TopicLayout, topic_specs
from streams.orchestration.demo import demo_catalog, demo_settings
from streams.schema import encode, request_record
from streams.tools.produce import produce_requests, trace_requests


def _setup(n: int) -> tuple[Settings, TopicLayout, list[Any], subprocess.Popen[bytes] | None]:
    base = Settings()
    cp = demo_catalog(base)
    s = demo_settings(base, cp)
    cat = Catalog.load(cp)
    lay = TopicLayout.from_settings(s, cat.model_names)
    asyncio.run(ensure_topics(s, topic_specs(s, cat.model_names)))
    return s, lay, trace_requests(s, cat, n, run_id="probe", days=1.0), None


def _start(s: Settings) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        {
            "GAR_APP_ID": s.app_id,
            "GAR_TOPICS__PREFIX": s.topics.prefix,
            "GAR_WORKER__CATALOG_PATH": str(s.worker.catalog_path),
        }
    )
    gar = Path(sys.executable).with_name("gar")
    log = Path(__file__).resolve().parent.parent / "var" / "bench" / f"{s.app_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(gar), "worker"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def throughput(n: int) -> None:
    s, lay, reqs, _ = _setup(n)
    asyncio.run(produce_requests(s, reqs))
    worker = _start(s)

    async def count() -> tuple[int, float, float]:
        c = AIOKafkaConsumer(
            lay.decisions,
            bootstrap_servers=s.kafka.bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await c.start()
        seen, first, t0 = 0, 0.0, time.monotonic()
        try:
            while seen < n and time.monotonic() - t0 < 300:
                for msgs in (await c.getmany(timeout_ms=200, max_records=20_000)).values():
                    seen += len(msgs)
                if seen and not first:
                    first = time.monotonic()
        finally:
            await c.stop()
        return seen, first, time.monotonic()

    try:
        seen, t1, t2 = asyncio.run(count())
        proc = psutil.Process(worker.pid)
        cpu = proc.cpu_times().user + proc.cpu_times().system
        rss_mb = proc.memory_info().rss / 1e6
    finally:
        worker.terminate()
        worker.wait(60)
    print(
        f"decided {seen}: {seen / (t2 - t1):.0f}/s (first to last decision), "
        f"worker CPU {cpu / max(seen, 1) * 1e6:.0f} us/decision, RSS {rss_mb:.0f} MB"
    )


def latency(rate: float, seconds: float) -> None:
    s, lay, reqs, _ = _setup(int(rate * seconds) + 1)
    worker = _start(s)

    async def run() -> np.ndarray[Any, Any]:
        c = AIOKafkaConsumer(
            *lay.dispatch.values(),
            bootstrap_servers=s.kafka.bootstrap_servers,
            group_id=None,
            auto_offset_reset="latest",
        )
        p = AIOKafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers, linger_ms=0)
        await c.start()
        await p.start()
        sent: dict[str, float] = {}
        got: dict[str, float] = {}

        async def poll() -> None:
            for msgs in (await c.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                for m in msgs:
                    got.setdefault(m.key.decode(), now)

        try:
            warm = reqs[0]
            await p.send_and_wait(
                lay.requests, encode(request_record(warm)), key=warm.tenant.encode()
            )
            while warm.request_id not in got:
                await poll()
            await asyncio.sleep(6.0)  # past Faust's second rebalance after the first start

            async def consume() -> None:
                while len(sent) < len(reqs) - 1 or any(k not in got for k in sent):
                    await poll()

            task = asyncio.create_task(consume())
            t0 = time.perf_counter()
            for i, r in enumerate(reqs[1:], 1):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent[r.request_id] = time.perf_counter()
                await p.send(lay.requests, encode(request_record(r)), key=r.tenant.encode())
            await asyncio.wait_for(task, 120)
        finally:
            await p.stop()
            await c.stop()
        return np.array([got[k] - t for k, t in sent.items()]) * 1000.0

    try:
        lat = asyncio.run(run())
    finally:
        worker.terminate()
        worker.wait(60)
    print(
        f"{rate:.0f}/s for {seconds:.0f}s: p50 {np.percentile(lat, 50):.1f} ms, "
        f"p99 {np.percentile(lat, 99):.1f} ms, p99.9 {np.percentile(lat, 99.9):.1f} ms"
    )


if __name__ == "__main__":
    if sys.argv[1] == "throughput":
        throughput(int(sys.argv[2]))
    else:
        latency(float(sys.argv[2]), float(sys.argv[3]))
