"""Router end to end vs the raw limit, in one run: sustained decisions/s for one and two
``gar worker`` processes, as a ratio to the aiokafka pass-through over the same requests.

One run = one topic prefix on the shared broker, ``--partitions`` partitions (default 2):

1. publish the eval scenario's policy, real carbon intensity for the trace's period, and
   ``--requests`` real trace requests (100 partition-balanced tenants) to the requests topic;
2. raw pass-through over those requests (``raw_passthrough.py --serve``);
3. one ``gar worker`` (full pipeline: parse, dedupe, estimate, decide, tenant tables,
   decision + dispatch records, changelog checkpoint, metrics to the store) from offset 0;
4. two ``gar worker`` processes (new app id, same requests) once their group is stable;
5. raw pass-through again (the machine is shared: raw is bracketed and averaged).

Rates are sustained rates between 10% and 90% of the records (after the consumer group is
stable), from end offsets of the output topics (decisions + dead letters for the router).
CPU is user+system seconds of the worker processes over the same window (psutil).

    .venv/bin/python benchmarks/router_e2e.py [--requests 150000] [--workers 1,2] [--no-record]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import benchlib as bl
from raw_passthrough import measure_raw

from streams.config import Settings
from streams.kafka.topics import TopicLayout


@dataclass
class RouterRun:
    workers: int
    window: bl.Window


async def measure_router(settings: Settings, n: int, workers: int) -> bl.Window:
    wl_layout = TopicLayout.from_settings(settings, ())
    procs = [bl.spawn_worker(settings, f"w{i}") for i in range(workers)]
    try:
        return await bl.watch(
            settings,
            [wl_layout.decisions, wl_layout.dead_letter],
            n,
            [p.pid for p in procs],
            ready=bl.stable_group(settings, settings.app_id, workers),
            timeout_s=600.0,
        )
    finally:
        bl.stop(procs)


async def run_all(
    n: int,
    partitions: int,
    worker_counts: list[int],
    batch_max: int,
    batch_within_s: float,
    keep: bool,
    dispatch_partitions: int | None = None,
) -> dict[str, Any]:
    settings = bl.run_settings(
        partitions,
        dispatch_partitions=dispatch_partitions,
        batch_max=batch_max,
        batch_within_s=batch_within_s,
    )
    wl = bl.build_workload(settings, n)
    apps = {k: bl.with_app_id(settings, f"{settings.app_id}-w{k}") for k in worker_counts}
    for s in apps.values():
        await bl.create_topics(s, wl.catalog)
    await bl.create_topics(settings, wl.catalog)
    await bl.publish_policy_and_carbon(settings, wl)
    pub = await bl.publish_requests(settings, wl.values)
    try:
        raw = [await measure_raw(settings, n, "before")]
        runs = [RouterRun(k, await measure_router(apps[k], n, k)) for k in worker_counts]
        raw.append(await measure_raw(settings, n, "after"))
    finally:
        if not keep:
            for s in (settings, *apps.values()):
                await bl.delete_run_topics(s)
    raw_rate = sum(w.rate_per_s for w in raw) / len(raw)
    raw_cpu = sum(w.cpu_us_per_record for w in raw) / len(raw)
    raw_broker = [w.broker_cpu_us_per_record for w in raw]
    out: dict[str, Any] = {
        "requests": n,
        "partitions": partitions,
        "dispatch_partitions": settings.topics.dispatch_partition_count(),
        "mean_request_bytes": round(wl.mean_bytes),
        "candidates": wl.catalog.n_candidates,
        "batch_max": batch_max,
        "batch_within_s": batch_within_s,
        "publish_msg_per_s": round(pub),
        "hot_path": getattr(settings.worker, "hot_path", "faust"),
        "metrics_on": settings.influx.enabled,
        "raw_msg_per_s": [round(w.rate_per_s) for w in raw],
        "raw_msg_per_s_mean": round(raw_rate),
        "raw_cpu_us_per_msg": round(raw_cpu, 1),
        "raw_broker_cpu_us_per_msg": _mean(raw_broker),
    }
    one = next((r for r in runs if r.workers == 1), None)
    for r in runs:
        key = f"workers_{r.workers}"
        out[key] = {
            "decisions_per_s": round(r.window.rate_per_s),
            "ratio_to_raw": round(r.window.rate_per_s / raw_rate, 4),
            "cpu_us_per_decision": round(r.window.cpu_us_per_record, 1),
            "cpu_ratio_to_raw": round(r.window.cpu_us_per_record / raw_cpu, 1) if raw_cpu else None,
            "worker_cpu_cores_used": round(r.window.cpu_s / r.window.seconds, 2),
            "broker_cpu_us_per_decision": _mean([r.window.broker_cpu_us_per_record]),
            "rss_mb_max": round(r.window.rss_mb_max),
            "window_s": round(r.window.seconds, 2),
        }
        if one is not None and r.workers != 1:
            out[key]["scaling_vs_1"] = round(r.window.rate_per_s / one.window.rate_per_s, 2)
    return out


def _mean(xs: list[float | None]) -> float | None:
    """Mean of the measured values (None when the broker is not a local process)."""
    got = [x for x in xs if x is not None]
    return round(sum(got) / len(got), 1) if got else None


def body(res: dict[str, Any]) -> str:
    rows = [
        f"Requests: {res['requests']} real trace requests ({res['mean_request_bytes']} B "
        f"mean), {res['partitions']} partitions "
        f"({res.get('dispatch_partitions', res['partitions'])} per dispatch topic), "
        f"K = {res['candidates']} candidates, "
        f"batch_max {res['batch_max']}, batch_within {res['batch_within_s']} s, hot path "
        f"`{res['hot_path']}`, metrics {'on' if res['metrics_on'] else 'OFF'}. Raw "
        f"pass-through before/after: {', '.join(f'{r:,}' for r in res['raw_msg_per_s'])} "
        f"msg/s (mean {res['raw_msg_per_s_mean']:,}), {res['raw_cpu_us_per_msg']} CPU µs/msg; "
        f"broker CPU µs/msg: {res.get('raw_broker_cpu_us_per_msg')}.",
        "",
        "| workers | decisions/s | ratio to raw | CPU µs/decision | CPU vs raw | "
        "worker cores used | broker CPU µs/decision | scaling vs 1 | RSS MB (max) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in sorted(key for key in res if key.startswith("workers_")):
        r = res[k]
        rows.append(
            f"| {k.split('_')[1]} | {r['decisions_per_s']:,} | {r['ratio_to_raw']:.1%} | "
            f"{r['cpu_us_per_decision']} | {r['cpu_ratio_to_raw']}x | "
            f"{r['worker_cpu_cores_used']} | {r.get('broker_cpu_us_per_decision')} | "
            f"{r.get('scaling_vs_1', '—')} | "
            f"{r['rss_mb_max']} |"
        )
    return "\n".join(rows) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=150_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts to run")
    ap.add_argument(
        "--dispatch-partitions",
        type=int,
        default=None,
        help="partitions of each dispatch topic (default: --partitions)",
    )
    ap.add_argument("--batch-max", type=int, default=1_000)
    ap.add_argument("--batch-within-s", type=float, default=0.02)
    ap.add_argument(
        "--code",
        default=None,
        metavar="REF",
        help="run workers on streams/ as committed at REF (default: working tree)",
    )
    ap.add_argument("--keep-topics", action="store_true")
    ap.add_argument("--no-record", action="store_true", help="print only; no results.jsonl entry")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    facts = bl.machine_facts()
    facts["code"] = bl.use_code(args.code)
    counts = [int(x) for x in args.workers.split(",") if x]
    res = asyncio.run(
        run_all(
            args.requests,
            args.partitions,
            counts,
            args.batch_max,
            args.batch_within_s,
            args.keep_topics,
            args.dispatch_partitions,
        )
    )
    return facts, res


def main() -> None:
    args = parse_args()
    facts, res = run(args)
    if args.no_record:
        print(res)
        return
    bl.record("router end to end", facts, res, body(res))


if __name__ == "__main__":
    main()
