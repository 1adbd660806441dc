"""Decision latency: request on the broker -> its dispatch record on the broker, p50/p99/p999,
with a paced producer at fractions (default 50% and 90%) of the sustained maximum.

Both the requests topic and every dispatch topic of the run use ``LogAppendTime``, so the two
timestamps come from one clock (the broker's): latency = dispatch append time - request append
time, which covers consumer fetch, parse, decide, the decision flush (acks=all), and the dispatch
flush. Not included: the producer's own linger before the request reaches the broker (the bench
producer uses linger 5 ms).

The maximum is ``--max-rate``, or else measured in the same run first: the worker drains
``--probe-requests`` published before it starts (the sustained rate between 10% and 90%), then
the levels are paced at fractions of that, on the same worker and topics. Requests sent in the
first ``--warmup-s`` of each level are not counted.

    .venv/bin/python benchmarks/latency.py [--levels 0.5,0.9] [--seconds 20] [--max-rate R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import psutil
from aiokafka import AIOKafkaProducer

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import benchlib as bl

from streams.app.gc_tuning import freeze_survivors
from streams.config import Settings
from streams.kafka.clients import client_kwargs
from streams.kafka.topics import TopicLayout


@dataclass
class Paced:
    first_counted: int
    """Index of the first request sent after the warm-up."""
    achieved_rate_per_s: float
    generator_cpu_s: float
    """CPU of this (load generator) process while pacing."""
    worker_cpu_s: float
    """CPU of the worker over the same time."""
    seconds: float


async def paced_send(
    settings: Settings,
    values: list[tuple[bytes, bytes]],
    rate: float,
    warmup_s: float,
    worker: psutil.Process,
) -> Paced:
    """Send ``values`` at ``rate``/s. Linger 5 ms: the latency starts at the request's append
    time on the broker, so the producer's linger is not measured, and a produce request per
    message (linger 0) made the load generator and the broker burn the cores the worker is
    measured on. The generator's and the worker's CPU over the same time are returned: they
    share this box's two cores (a batch per partition per 2 ms tick instead of a ``send()``
    per request measured the same ~33 µs per request, so the simple loop stayed)."""
    topic = settings.topics.name(settings.topics.requests)
    prod = AIOKafkaProducer(**client_kwargs(settings.kafka), acks="all", linger_ms=5)
    await prod.start()
    first_counted = len(values)
    gen = psutil.Process()
    try:
        pending: list[asyncio.Future[Any]] = []
        t0 = time.monotonic()
        cpu0 = (bl.cpu_s([gen]), bl.cpu_s([worker]))
        for i, (key, value) in enumerate(values):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if first_counted == len(values) and time.monotonic() - t0 >= warmup_s:
                first_counted = i
            pending.append(await prod.send(topic, value, key=key))
            if len(pending) >= 2_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        seconds = time.monotonic() - t0
        cpu1 = (bl.cpu_s([gen]), bl.cpu_s([worker]))
    finally:
        await prod.stop()
    return Paced(
        first_counted, len(values) / seconds, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], seconds
    )


async def read_all(settings: Settings, topics: list[str]) -> list[Any]:
    """Every record of ``topics`` from the beginning to the current end."""
    out: list[Any] = []
    await bl.scan_topics(settings, topics, out.extend)
    return out


def percentiles(lat_ms: np.ndarray) -> dict[str, float]:
    if lat_ms.size == 0:
        return {"count": 0}
    p50, p99, p999 = np.percentile(lat_ms, [50, 99, 99.9])
    return {
        "count": int(lat_ms.size),
        "p50_ms": round(float(p50), 1),
        "p99_ms": round(float(p99), 1),
        "p999_ms": round(float(p999), 1),
        "max_ms": round(float(lat_ms.max()), 1),
    }


# Long on purpose: one measurement protocol (set-up, paced load, watch, result row) read top
# to bottom, as the recorded results describe it.
async def run(
    levels: list[float],
    seconds: float,
    max_rate: float | None,
    warmup_s: float,
    partitions: int,
    dispatch_partitions: int | None = None,
    probe_n: int = 60_000,
    settings: Settings | None = None,
) -> dict[str, Any]:
    settings = settings or bl.run_settings(partitions, dispatch_partitions=dispatch_partitions)
    given = max_rate is not None
    probe = bl.build_workload(settings, probe_n if max_rate is None else 1, run_id="probe")
    lay = TopicLayout.from_settings(settings, probe.catalog.model_names)
    await bl.create_topics(settings, probe.catalog)
    await bl.publish_policy_and_carbon(settings, probe)
    if max_rate is None:  # the maximum of this run, drained by the worker started below
        await bl.publish_requests(settings, probe.values)
    worker = bl.spawn_worker(settings, "latency")
    levels_out: list[dict[str, Any]] = []
    try:
        ready = bl.stable_group(settings, settings.app_id, 1)
        deadline = time.monotonic() + 120
        while not await ready():
            bl.check_alive([worker])
            if time.monotonic() > deadline:
                raise TimeoutError("worker group never became stable")
            await asyncio.sleep(0.5)
        if max_rate is None:
            win = await bl.watch(
                settings, [lay.decisions, lay.dead_letter], probe_n, [worker.pid], timeout_s=600
            )
            max_rate = win.rate_per_s
            await asyncio.sleep(2.0)
        await asyncio.sleep(3.0)  # table recovery after assignment
        rates = [lv * max_rate for lv in levels]
        counts = [int(r * seconds) for r in rates]
        wl = bl.build_workload(settings, sum(counts))
        # The load generator's own heap (the whole workload) made full collections of 70-150
        # ms, after which it sent the backlog in one burst: pauses of the generator.
        freeze_survivors()
        start = 0
        windows: list[tuple[int, int, float, Paced]] = []
        proc = psutil.Process(worker.pid)
        for lv, rate, n in zip(levels, rates, counts, strict=True):
            paced = await paced_send(settings, wl.values[start : start + n], rate, warmup_s, proc)
            windows.append((start + paced.first_counted, start + n, lv, paced))
            start += n
            await asyncio.sleep(2.0)  # drain before the next level
        records = await read_all(settings, [lay.requests, lay.decisions, *lay.dispatch.values()])
    finally:
        bl.stop([worker])
        await bl.delete_run_topics(settings)
    req_ts: dict[str, int] = {}
    disp_ts: dict[str, int] = {}
    dec_ts: dict[str, int] = {}
    for m in records:
        if m.topic == lay.requests:
            req_ts[orjson.loads(m.value)["request_id"]] = m.timestamp
        elif m.topic == lay.decisions:
            dec_ts.setdefault(orjson.loads(m.value)["request_id"], m.timestamp)
        elif m.key is not None:
            disp_ts.setdefault(m.key.decode(), m.timestamp)
    index = {r.request_id: i for i, r in enumerate(wl.requests)}
    for lo, hi, lv, paced in windows:
        pairs = sorted(
            (index[rid], disp_ts[rid] - ts)
            for rid, ts in req_ts.items()
            if lo <= index.get(rid, -1) < hi and rid in disp_ts
        )
        lat = np.array([ms for _, ms in pairs], dtype=float)
        # Where the time goes: fetch + parse + decide + decision flush, then the commit chain
        # (wait for the decision ack and the earlier batches' commits, dispatch flush).
        ids = [
            rid
            for rid in req_ts
            if lo <= index.get(rid, -1) < hi and rid in disp_ts and rid in dec_ts
        ]
        to_decision = np.array([dec_ts[r] - req_ts[r] for r in ids], dtype=float)
        to_dispatch = np.array([disp_ts[r] - dec_ts[r] for r in ids], dtype=float)
        # p50 per tenth of the level in send order: rising = the worker falls behind.
        trend = [round(float(np.median(part)), 1) for part in np.array_split(lat, 10) if part.size]
        missing = sum(1 for rid in req_ts if lo <= index.get(rid, -1) < hi and rid not in disp_ts)
        levels_out.append(
            {
                "load": lv,
                "target_rate_per_s": round(lv * max_rate),
                "achieved_rate_per_s": round(paced.achieved_rate_per_s),
                "no_dispatch": missing,
                # Busy share of one core while pacing: ~1.0 = the worker is the
                # bottleneck at this rate, whatever fraction of the maximum it is.
                "worker_cpu_share": round(paced.worker_cpu_s / paced.seconds, 2),
                "generator_cpu_share": round(paced.generator_cpu_s / paced.seconds, 2),
                **percentiles(lat),
                "p50_ms_by_tenth": trend,
                "request_to_decision": percentiles(to_decision),
                "decision_to_dispatch": percentiles(to_dispatch),
            }
        )
    return {
        "max_rate_per_s": round(max_rate),
        "max_rate_source": "--max-rate" if given else f"this run ({probe_n:,} drained)",
        "partitions": partitions,
        "dispatch_partitions": settings.topics.dispatch_partition_count(),
        "levels": levels_out,
        "hot_path": getattr(settings.worker, "hot_path", "faust"),
        "batch_max": settings.worker.batch_max,
        "batch_within_s": settings.worker.batch_within_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--levels", default="0.5,0.9", help="fractions of the sustained maximum")
    ap.add_argument("--seconds", type=float, default=20.0, help="paced seconds per level")
    ap.add_argument("--warmup-s", type=float, default=3.0)
    ap.add_argument(
        "--max-rate",
        type=float,
        default=None,
        help="decisions/s of one worker (default: measured in this run first)",
    )
    ap.add_argument("--probe-requests", type=int, default=60_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument(
        "--dispatch-partitions",
        type=int,
        default=None,
        help="partitions of each dispatch topic (default: --partitions)",
    )
    ap.add_argument("--no-record", action="store_true", help="print only; no results.jsonl entry")
    ap.add_argument(
        "--code",
        default=None,
        metavar="REF",
        help="run the worker on streams/ as committed at REF (default: working tree)",
    )
    args = ap.parse_args()
    max_rate = args.max_rate
    facts = bl.machine_facts()
    facts["code"] = bl.use_code(args.code)
    levels = [float(x) for x in args.levels.split(",")]
    res = asyncio.run(
        run(
            levels,
            args.seconds,
            max_rate,
            args.warmup_s,
            args.partitions,
            args.dispatch_partitions,
            args.probe_requests,
        )
    )
    rows = [
        "| load | target/s | achieved/s | decisions measured | p50 ms | p99 ms | p99.9 ms | "
        "max ms | no dispatch | request->decision p50/p99 | decision->dispatch p50/p99 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lv in res["levels"]:
        a, b = lv["request_to_decision"], lv["decision_to_dispatch"]
        rows.append(
            f"| {lv['load']:.0%} | {lv['target_rate_per_s']:,} | "
            f"{lv['achieved_rate_per_s']:,} | {lv['count']:,} | {lv.get('p50_ms')} | "
            f"{lv.get('p99_ms')} | {lv.get('p999_ms')} | {lv.get('max_ms')} | "
            f"{lv['no_dispatch']} | {a.get('p50_ms')} / {a.get('p99_ms')} | "
            f"{b.get('p50_ms')} / {b.get('p99_ms')} |"
        )
    body = (
        f"One worker, {res['partitions']} partitions ({res['dispatch_partitions']} per "
        f"dispatch topic), sustained maximum "
        f"{res['max_rate_per_s']:,} decisions/s, batch_max {res['batch_max']}, "
        f"batch_within {res['batch_within_s']} s, hot path `{res['hot_path']}`. Latency = "
        f"dispatch append time - request append time (both LogAppendTime, broker clock), "
        f"warm-up {args.warmup_s:.0f} s excluded.\n\n" + "\n".join(rows) + "\n"
    )
    if args.no_record:
        print(json.dumps({"bench": "decision latency", "machine": facts, **res}))
    else:
        bl.record("decision latency", facts, res, body)


if __name__ == "__main__":
    main()
