"""Raw limit: aiokafka consume-from-requests -> produce-to-output pass-through, no routing.

The physical ceiling every router number is compared with: the same broker, the same requests
topic and partitions, the same message bytes, the same output pattern as the router's sink
(one ``send_batch`` per topic-partition per consumed batch, acks=all, then commit). Nothing is
parsed or decided.

    .venv/bin/python benchmarks/raw_passthrough.py [--requests 150000] [--partitions 2]
    .venv/bin/python benchmarks/raw_passthrough.py --serve --group G   # used by router_e2e.py

Standalone it pre-publishes real trace requests to a throwaway topic set, runs the
pass-through as a subprocess and reports the sustained rate (10%..90% of the records) and CPU
seconds per message of that process; it prints a JSON line and appends to results.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import benchlib as bl

from streams.config import Settings
from streams.kafka.clients import client_kwargs


async def serve(settings: Settings, group: str, max_records: int) -> None:
    """Consume requests, re-send each value unchanged to the output topic's same partition,
    await acks, commit; until SIGTERM."""
    src = settings.topics.name(settings.topics.requests)
    dst = settings.topics.name(bl.RAW_OUT)
    consumer = AIOKafkaConsumer(
        src,
        **client_kwargs(settings.kafka),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 2**20,
        fetch_max_bytes=32 * 2**20,
        session_timeout_ms=settings.kafka.session_timeout_ms,
        heartbeat_interval_ms=settings.kafka.heartbeat_interval_ms,
    )
    producer = AIOKafkaProducer(
        **client_kwargs(settings.kafka), acks="all", linger_ms=1, max_batch_size=1_000_000
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    await consumer.start()
    await producer.start()
    try:
        while not stopping.is_set():
            got = await consumer.getmany(timeout_ms=20, max_records=max_records)
            if not got:
                continue
            futures: list[Any] = []
            for tp, msgs in got.items():
                batch = producer.create_batch()
                for m in msgs:
                    if batch.append(key=m.key, value=m.value, timestamp=None) is None:
                        fut = await producer.send_batch(batch, dst, partition=tp.partition)
                        futures.append(fut)
                        batch = producer.create_batch()
                        batch.append(key=m.key, value=m.value, timestamp=None)
                if batch.record_count():
                    futures.append(await producer.send_batch(batch, dst, partition=tp.partition))
            await asyncio.gather(*futures)
            await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


def spawn_raw(settings: Settings, group: str, tag: str, max_records: int = 1_000) -> Any:
    return bl.spawn(
        [sys.executable, __file__, "--serve", "--group", group, "--max-records", str(max_records)],
        bl.worker_env(settings),
        f"{settings.app_id}-raw-{tag}.log",
    )


async def measure_raw(settings: Settings, n: int, tag: str, consumers: int = 1) -> bl.Window:
    """Run the pass-through (``consumers`` processes, one group) over the ``n`` published
    requests and return its sustained window."""
    group = f"{settings.app_id}-raw-{tag}"
    procs = [spawn_raw(settings, group, f"{tag}{i}") for i in range(consumers)]
    try:
        return await bl.watch(
            settings,
            [settings.topics.name(bl.RAW_OUT)],
            n,
            [p.pid for p in procs],
            ready=bl.stable_group(settings, group, consumers),
        )
    finally:
        bl.stop(procs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=150_000, help="messages to pass through")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--serve", action="store_true", help="(internal) run the pass-through loop")
    ap.add_argument("--group", default="", help="(with --serve) consumer group id")
    ap.add_argument(
        "--max-records",
        type=int,
        default=1_000,
        help="records per getmany (the router's batch_max)",
    )
    ap.add_argument("--keep-topics", action="store_true")
    ap.add_argument("--no-record", action="store_true", help="print only; no results.jsonl entry")
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(Settings(), args.group, args.max_records))
        return
    facts = bl.machine_facts()
    settings = bl.run_settings(args.partitions)
    wl = bl.build_workload(settings, args.requests)

    async def run() -> tuple[float, bl.Window]:
        await bl.create_topics(settings, wl.catalog)
        pub = await bl.publish_requests(settings, wl.values)
        try:
            return pub, await measure_raw(settings, len(wl.values), "solo")
        finally:
            if not args.keep_topics:
                await bl.delete_run_topics(settings)

    pub, win = asyncio.run(run())
    result = {
        "requests": len(wl.values),
        "partitions": args.partitions,
        "mean_request_bytes": round(wl.mean_bytes),
        "publish_msg_per_s": round(pub),
        "raw_msg_per_s": round(win.rate_per_s),
        "raw_cpu_us_per_msg": round(win.cpu_us_per_record, 1),
    }
    body = (
        f"| requests | partitions | bytes/msg | raw msg/s | raw CPU µs/msg |\n"
        f"|---|---|---|---|---|\n| {len(wl.values)} | {args.partitions} | "
        f"{wl.mean_bytes:.0f} | {win.rate_per_s:,.0f} | {win.cpu_us_per_record:.1f} |\n"
    )
    if args.no_record:
        print(result)
        return
    bl.record("raw pass-through", facts, result, body)


if __name__ == "__main__":
    main()
