"""Soak: a million paced requests through one ``gar worker`` with the fleet and the carbon feed
running, checked for memory growth, latency drift and exact accounting.

One worker (the direct hot path, metrics on), ``gar fleet`` answering every dispatch order with
a completion the worker folds back into its tenant states, and ``gar carbon-feed`` publishing the
real hourly intensity of the catalog's zones on an event-time clock that keeps pace with the
requests. Requests are the bench workload's real trace requests (``workload.py``), cycled with
fresh ids, their event times spread evenly so that ``--speedup`` event seconds pass per wall
second, the same clock the carbon feed runs on. The load is paced at ``--rate`` by the latency
benchmark's producer.

Measured and reported:

- the worker's RSS about every second (psutil): at the end of the warm-up (the first
  ``--warmup`` share of the requests decided) against the end, growth in % (target < 10 %);
- decision latency per window of ``--window`` requests: request append time -> decision append
  time, both ``LogAppendTime`` on the broker, p50/p99; the first window after the warm-up next
  to the last shows drift;
- accounting by request position (partition, offset): every request ends as exactly one
  decision or one dead letter; lost and decided-twice must be 0, else the exit status is 1;
- the paced rate, the duration, completions published and folded, intensity readings published
  and applied (the worker's ``/status.json``).

    .venv/bin/python benchmarks/soak.py [--requests 1000000] [--rate 6000] [--no-record]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import benchlib as bl
import soak_stats as st
from latency import Paced, paced_send

from streams.app.checkpoint import compact
from streams.app.gc_tuning import freeze_survivors
from streams.app.probe import web_port_path
from streams.config import Settings
from streams.kafka.clients import client_kwargs
from streams.kafka.topics import TopicLayout
from streams.schema.records import encode, request_record

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DEFAULT_RATE = 6_000  # about a third of one worker's drain rate on a quiet 2-core box

Records = list[ConsumerRecord[bytes, bytes]]


# ---------------------------------------------------------------- workload


def soak_values(
    base: bl.Workload, n: int, start_ms: int, step_ms: float, run: str
) -> list[tuple[bytes, bytes]]:
    """``n`` requests cycling over the base workload's real requests: fresh ids (the router
    deduplicates by id), event time ``start_ms + i * step_ms``. Each value is ``compact``ed:
    a million raw orjson results held at once took 4.5 GB (4.1 KB each), copies 0.46 GB."""
    reqs = base.requests
    out = []
    for i in range(n):
        r = replace(
            reqs[i % len(reqs)],
            request_id=f"soak-{run}-{i:07d}",
            ts_ms=start_ms + int(i * step_ms),
        )
        out.append((r.tenant.encode(), compact(encode(request_record(r)))))
    return out


def carbon_span_ms(settings: Settings, zones: list[str]) -> tuple[int, int]:
    """First and last hour of the zones' carbon data (every zone has both)."""
    from streams.data.carbon import load_carbon_dir
    from streams.tools.carbon_feed import carbon_dir

    data = load_carbon_dir(carbon_dir(settings), zones)
    return (
        max(int(z.ts_ms[0]) for z in data.values()),
        min(int(z.ts_ms[-1]) for z in data.values()),
    )


# ---------------------------------------------------------------- processes


def gar(settings: Settings, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
    """A ``gar`` command on this run's topics (the same interpreter and code as the worker)."""
    return bl.spawn(
        [sys.executable, "-P", "-c", "from streams.cli import main; main()", *args],
        bl.worker_env(settings),
        log_name,
    )


def status(settings: Settings, page: str = "status.json") -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of a page of the worker's web server (port 0, from its file)."""
    port = int(web_port_path(settings).read_text().strip())
    url = f"http://127.0.0.1:{port}/{page}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), dict(json.loads(resp.read()))
    except urllib.error.HTTPError as err:
        return int(err.code), dict(json.loads(err.read()))


async def wait_ready(settings: Settings, worker: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Until the worker's ``/readyz`` answers 200 (partitions assigned, control caught up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        bl.check_alive([worker])
        with contextlib.suppress(OSError, ValueError):
            code, _ = await asyncio.to_thread(status, settings, "readyz")
            if code == 200:
                return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the worker was not ready in {timeout_s:.0f} s")


async def wait_file(path: Path, procs: list[subprocess.Popen[bytes]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        bl.check_alive(procs)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear in {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------- sampling during the run


@dataclass
class Sampler:
    """RSS of the worker and the requests/outcomes on the broker, about every second."""

    settings: Settings
    lay: TopicLayout
    worker: psutil.Process
    samples: list[st.Sample] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    async def run(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        consumer = AIOKafkaConsumer(**client_kwargs(self.settings.kafka), group_id=None)
        await consumer.start()
        try:
            req = await bl.topic_partitions(consumer, self.lay.requests)
            out = [
                *await bl.topic_partitions(consumer, self.lay.decisions),
                *await bl.topic_partitions(consumer, self.lay.dead_letter),
            ]
            done = await bl.topic_partitions(consumer, self.lay.completions)
            while not stop.is_set():
                n_req = await bl.end_offsets(consumer, req)
                n_out = await bl.end_offsets(consumer, out)
                rss = self.worker.memory_info().rss / 2**20
                t = time.monotonic() - self.t0
                n_done = await bl.end_offsets(consumer, done)
                received = self.samples[-1].completions_received if self.samples else 0
                with contextlib.suppress(OSError, ValueError):
                    _, board = await asyncio.to_thread(status, self.settings)
                    received = int(board["throughput"]["completions"])
                self.samples.append(st.Sample(t, n_req, n_out, rss, n_done, received))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_s)
        finally:
            await consumer.stop()

    async def until(
        self, done: Callable[[Sampler], bool], worker: subprocess.Popen[bytes], timeout_s: float
    ) -> bool:
        """Until ``done(self)``; False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not done(self):
            bl.check_alive([worker])
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.5)
        return True

    def outcomes_at_least(self, n: int) -> Callable[[Sampler], bool]:
        return lambda s: bool(s.samples) and s.samples[-1].outcomes >= n

    def completions_received(self, n: int) -> Callable[[Sampler], bool]:
        """The fleet answered ``n`` orders and the worker received every answer."""

        def done(s: Sampler) -> bool:
            last = s.samples[-1] if s.samples else None
            return last is not None and last.completions_received >= last.completions >= n

        return done

    def backlog(self) -> dict[str, Any]:
        """Completions on the broker that the worker had not received yet: the largest, and
        at the last sample."""
        lags = [s.completions - s.completions_received for s in self.samples]
        return {"max": max(lags, default=None), "end": lags[-1] if lags else None}


# ---------------------------------------------------------------- reading the outcomes


async def scan(settings: Settings, topic: str, each: Callable[[Records], None]) -> dict[int, int]:
    """Feed every record of ``topic`` to ``each`` in batches, without holding them; returns
    the end offset of each partition."""
    ends = await bl.scan_topics(settings, [topic], each)
    return {tp.partition: end for tp, end in ends.items()}


@dataclass
class Outcomes:
    """Per request position: its append time, its decisions (count, first append time) and its
    dead letters; arrays per partition indexed by offset."""

    requests: dict[int, int]
    request_ts: dict[int, np.ndarray]
    decisions: dict[int, np.ndarray]
    decision_ts: dict[int, np.ndarray]
    dead_letters: dict[int, np.ndarray]
    other_dead_letters: int = 0
    """Dead letters of other topics (completions, carbon, policy)."""

    @classmethod
    def empty(cls, ends: dict[int, int]) -> Outcomes:
        return cls(
            dict(ends),
            {p: np.full(n, -1, np.int64) for p, n in ends.items()},
            {p: np.zeros(n, np.int64) for p, n in ends.items()},
            {p: np.full(n, -1, np.int64) for p, n in ends.items()},
            {p: np.zeros(n, np.int64) for p, n in ends.items()},
        )

    def add_requests(self, msgs: Records) -> None:
        for m in msgs:
            self.request_ts[m.partition][m.offset] = m.timestamp

    def add_decisions(self, msgs: Records) -> None:
        for m in msgs:
            d = orjson.loads(m.value) if m.value is not None else {}
            if "request_offset" in d:  # decisions.v2: the request is in the same partition
                p, off = m.partition, int(d["request_offset"])
            else:
                src = d["request_source"]
                p, off = int(src["partition"]), int(src["offset"])
            self.decisions[p][off] += 1
            if self.decision_ts[p][off] < 0:
                self.decision_ts[p][off] = m.timestamp

    def add_dead_letters(self, requests_topic: str) -> Callable[[Records], None]:
        def add(msgs: Records) -> None:
            for m in msgs:
                src = orjson.loads(m.value or b"{}").get("source") or {}
                if src.get("topic") == requests_topic:
                    self.dead_letters[int(src["partition"])][int(src["offset"])] += 1
                else:
                    self.other_dead_letters += 1

        return add

    def latencies(self) -> tuple[np.ndarray, np.ndarray]:
        """(request append time, ms to its first decision) of every decided request."""
        ts, lat = [], []
        for p, req in self.request_ts.items():
            dec = self.decision_ts[p]
            ok = (dec >= 0) & (req >= 0)
            ts.append(req[ok])
            lat.append(dec[ok] - req[ok])
        return np.concatenate(ts), np.concatenate(lat).astype(float)


async def read_outcomes(settings: Settings, lay: TopicLayout) -> Outcomes:
    consumer = AIOKafkaConsumer(**client_kwargs(settings.kafka), group_id=None)
    await consumer.start()
    try:
        tps = await bl.topic_partitions(consumer, lay.requests)
        ends = {tp.partition: n for tp, n in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()
    out = Outcomes.empty(ends)
    await scan(settings, lay.requests, out.add_requests)
    await scan(settings, lay.decisions, out.add_decisions)
    await scan(settings, lay.dead_letter, out.add_dead_letters(lay.requests))
    return out


async def topic_total(settings: Settings, topic: str) -> int:
    consumer = AIOKafkaConsumer(**client_kwargs(settings.kafka), group_id=None)
    await consumer.start()
    try:
        return await bl.end_offsets(consumer, await bl.topic_partitions(consumer, topic))
    finally:
        await consumer.stop()


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class Options:
    requests: int
    rate: float
    speedup: float
    partitions: int
    warmup: float
    window: int
    base_requests: int
    drain_timeout_s: float


# Long on purpose: one protocol (set-up, processes, paced load, drain, read back) top to bottom.
async def soak(opts: Options) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    settings = bl.run_settings(opts.partitions, run=run)
    base = bl.build_workload(settings, min(opts.base_requests, opts.requests), run_id=run)
    catalog = base.catalog
    lay = TopicLayout.from_settings(settings, catalog.model_names)
    zones = sorted({r.zone for r in catalog.regions})
    step_ms = opts.speedup * 1000.0 / opts.rate  # event ms between two requests
    first_ms, last_ms = carbon_span_ms(settings, zones)
    start_ms = first_ms + 2 * HOUR_MS
    hours = math.ceil(opts.requests * step_ms / HOUR_MS) + 3  # the feed outlasts the load
    if start_ms + hours * HOUR_MS > last_ms:
        raise SystemExit(
            f"{hours} event hours at --speedup {opts.speedup:g} and --rate {opts.rate:g} do not "
            f"fit the {(last_ms - first_ms) // HOUR_MS} hours of carbon data: lower --speedup"
        )
    values = soak_values(base, opts.requests, start_ms, step_ms, run)
    await bl.create_topics(settings, catalog)
    # The scenario's budgets for the requests of one event day (the budget window).
    await bl.publish_policy(settings, base, n_requests=round(DAY_MS / step_ms), days=1.0)
    ready_file = bl.LOG_DIR / f"{settings.app_id}-carbon-ready"
    ready_file.unlink(missing_ok=True)
    os.environ.update({"GAR_WORKER__WEB_ENABLED": "true", "GAR_WORKER__WEB_PORT": "0"})
    worker = bl.spawn_worker(settings, "soak")
    procs = [worker]
    stop_sampling = asyncio.Event()
    try:
        await wait_ready(settings, worker, 120.0)
        procs.append(
            gar(settings, ["fleet", "--idle-timeout", "600"], f"{settings.app_id}-fleet.log")
        )
        feed_args = ["carbon-feed", "--trace-start", str(start_ms), "--hours", str(hours)]
        feed_args += ["--speedup", f"{opts.speedup:g}", "--ready-file", str(ready_file)]
        feed = gar(settings, feed_args, f"{settings.app_id}-carbon.log")
        procs.append(feed)
        await wait_file(ready_file, procs, 60.0)
        await asyncio.sleep(1.0)  # the readings due at the start applied
        proc = psutil.Process(worker.pid)
        sampler = Sampler(settings, lay, proc)
        sampling = asyncio.create_task(sampler.run(stop_sampling))
        freeze_survivors()  # the generator's heap (the whole workload): no long collections
        paced = await paced_send(settings, values, opts.rate, 0.0, proc)
        t_paced = time.monotonic()
        drained = await sampler.until(
            sampler.outcomes_at_least(opts.requests), worker, opts.drain_timeout_s
        )
        drain_s = time.monotonic() - t_paced
        folded = await sampler.until(
            sampler.completions_received(opts.requests), worker, opts.drain_timeout_s
        )
        feedback_s = time.monotonic() - t_paced
        await asyncio.sleep(3.0)  # late duplicates, and one more RSS sample
        stop_sampling.set()
        await sampling
        _, board = await asyncio.to_thread(status, settings)
        bl.check_alive(procs[:2])  # the worker and the fleet; the feed ends with its hours
        if feed.poll() not in (None, 0):
            raise RuntimeError(f"the carbon feed failed; see {bl.LOG_DIR}")
    finally:
        stop_sampling.set()
        bl.stop(procs)
    try:
        outcomes = await read_outcomes(settings, lay)
        completions = await topic_total(settings, lay.completions)
        readings = await topic_total(settings, lay.carbon_intensity)
    finally:
        await bl.delete_run_topics(settings)
    timing = {
        "drained": drained,
        "drain_after_load_s": round(drain_s, 1),
        "completions_all_received": folded,
        "completions_after_load_s": round(feedback_s, 1),
        "completions_backlog": sampler.backlog(),
    }
    return result(
        opts, paced, sampler.samples, outcomes, board, completions, readings, settings
    ) | {"after_load": timing}


def result(
    opts: Options,
    paced: Paced,
    samples: list[st.Sample],
    outcomes: Outcomes,
    board: dict[str, Any],
    completions: int,
    readings: int,
    settings: Settings,
) -> dict[str, Any]:
    warmup_n = int(opts.warmup * opts.requests)
    acc = st.account(outcomes.requests, outcomes.decisions, outcomes.dead_letters)
    req_ts, lat = outcomes.latencies()
    windows = st.latency_windows(req_ts, lat, opts.window)
    p50, p99 = np.percentile(lat, [50, 99]) if lat.size else (math.nan, math.nan)
    t = board["throughput"]
    return {
        "requests": opts.requests,
        "target_rate_per_s": opts.rate,
        "achieved_rate_per_s": round(paced.achieved_rate_per_s),
        "paced_s": round(paced.seconds, 1),
        "worker_cpu_share": round(paced.worker_cpu_s / paced.seconds, 2),
        "generator_cpu_share": round(paced.generator_cpu_s / paced.seconds, 2),
        "speedup": opts.speedup,
        "partitions": opts.partitions,
        "hot_path": settings.worker.hot_path,
        "batch_max": settings.worker.batch_max,
        "metrics_on": settings.influx.enabled,
        "warmup_requests": warmup_n,
        "rss": asdict(st.rss_growth(samples, warmup_n)),
        "rss_samples": len(samples),
        "trajectory": st.trajectory(samples, opts.window),
        "latency_ms": {"p50": round(float(p50), 1), "p99": round(float(p99), 1)},
        "latency_windows": [asdict(w) for w in windows],
        "latency_drift": st.drift(windows, warmup_n),
        "accounting": {**asdict(acc), "ok": acc.ok},
        "other_dead_letters": outcomes.other_dead_letters,
        "completions_published": completions,
        "completions_received": t.get("completions"),
        "feedback_folded": t.get("feedback_folded"),
        "intensity_published": readings,
        "intensity_applied": t.get("intensity_readings"),
        "worker_duplicates": t.get("duplicates"),
    }


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def summary(res: dict[str, Any], facts: dict[str, Any]) -> str:
    rss, acc, dr, al = res["rss"], res["accounting"], res["latency_drift"], res["after_load"]
    a, b = dr["first"], dr["last"]
    la = facts["load_avg_start"]
    rss_ok = "met" if rss["growth_pct"] < 10 else "MISSED"
    return "\n".join(
        [
            f"{res['requests']:,} requests at {res['achieved_rate_per_s']:,}/s "
            f"(target {res['target_rate_per_s']:,.0f}) over {res['paced_s']:,.0f} s, one worker "
            f"({res['worker_cpu_share']:.2f} of a core), load average at start {la[0]}.",
            f"RSS {rss['warm_mb']:.0f} MB after the warm-up ({res['warmup_requests']:,} "
            f"requests) -> {rss['end_mb']:.0f} MB at the end: {rss['growth_pct']:+.1f} % "
            f"(target < 10 %: {rss_ok}); max {rss['max_mb']:.0f} MB.",
            f"Latency request -> decision (broker clock): all p50 {res['latency_ms']['p50']} / "
            f"p99 {res['latency_ms']['p99']} ms; window at {a['first']:,}: p50 {a['p50_ms']} / "
            f"p99 {a['p99_ms']} ms; last window at {b['first']:,}: p50 {b['p50_ms']} / p99 "
            f"{b['p99_ms']} ms.",
            f"Accounting: {acc['decided']:,} decided, {acc['dead_lettered']:,} dead-lettered, "
            f"lost {acc['lost']}, decided twice {acc['decided_twice']}, both "
            f"{acc['decided_and_dead_lettered']}: {'OK' if acc['ok'] else 'FAILED'}.",
            f"Completions {res['completions_published']:,} published, "
            f"{res['feedback_folded']:,} folded; intensity readings "
            f"{res['intensity_published']:,} published, {res['intensity_applied']:,} applied.",
            "RSS MB (completions not yet received by the worker) every window, then at the "
            "end: "
            + ", ".join(
                f"{p['rss_mb']:.0f} ({p['completions_backlog']:,})" for p in res["trajectory"]
            )
            + ".",
            f"After the load: every outcome on the broker after {al['drain_after_load_s']} s "
            f"({yes(al['drained'])}), every completion received by the worker after "
            f"{al['completions_after_load_s']} s ({yes(al['completions_all_received'])}); "
            f"completions not yet received at most {al['completions_backlog']['max']:,}.",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=DEFAULT_RATE, help="paced requests/s")
    ap.add_argument("--speedup", type=float, default=3600.0, help="event seconds per wall second")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--warmup", type=float, default=0.1, help="share of requests not compared")
    ap.add_argument("--window", type=int, default=100_000, help="requests per latency window")
    ap.add_argument("--base-requests", type=int, default=100_000, help="distinct trace requests")
    ap.add_argument("--drain-timeout", type=float, default=300.0)
    ap.add_argument("--no-record", action="store_true", help="print only; no results.jsonl entry")
    args = ap.parse_args()
    opts = Options(
        args.requests,
        args.rate,
        args.speedup,
        args.partitions,
        args.warmup,
        args.window,
        args.base_requests,
        args.drain_timeout,
    )
    facts = bl.machine_facts()
    facts["code"] = bl.use_code(None)
    res = asyncio.run(soak(opts))
    facts["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    body = summary(res, facts)
    if args.no_record:
        print(json.dumps({"bench": "soak", "machine": facts, **res}))
        print("\n" + body)
    else:
        bl.record("soak", facts, res, body)
    if not res["accounting"]["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
