"""The performance goals measured side by side in one run, on a fresh private broker.

1. A private Kafka broker is started (own ports and data under var/bench/, so no topic of any
   other run exists: the topic count changes the broker's CPU per record); every client of this
   run, workers included, uses it. The metrics store is the local one (workers write metrics).
2. Warm-up: the raw pass-through over the published requests once, discarded (the first ~150k
   records on a fresh broker are slow).
3. ``--rounds`` rounds, the order of the three configurations alternating between rounds: the
   raw aiokafka pass-through, one ``gar worker``, two workers, each draining the same published
   requests with its own consumer group; a worker configuration's changelog topics are deleted
   after it, so every configuration meets the same topic count. Reported: the median of each
   configuration's sustained rate (10%..90% of the records) and of the per-round ratios to the
   raw pass-through of the same round, CPU per decision of the workers and of the broker.
4. Latency: one worker paced at 50% (and ``--levels``) of this run's median one-worker rate,
   p50/p99 request -> decision and -> dispatch on the broker's clock (``latency.py``).
5. Memory: one worker routing 10,000 tenants x 8 models x 16 zones (``memory.py``).
6. Audit: ``gar audit``'s pass over one worker's decisions read back from this broker, and the
   in-process re-derivation rate (``bench_audit.py``).

    .venv/bin/python benchmarks/goals.py [--requests 150000] [--rounds 3] [--no-record]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import sys
import time
import uuid
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import benchlib as bl
from raw_passthrough import measure_raw
from router_e2e import measure_router

from streams.app.catalog import load_catalog
from streams.config import Settings
from streams.devenv import KafkaBroker, private_dev_settings

CONFIGS = ("raw", "workers_1", "workers_2")


def start_private_broker() -> KafkaBroker:
    """A fresh broker; this process and everything it spawns use it (environment)."""
    run = uuid.uuid4().hex[:6]
    dev = private_dev_settings(bl.LOG_DIR / f"broker-{run}")
    broker = KafkaBroker(dev)
    broker.start()
    os.environ.update(
        {
            "GAR_KAFKA__BOOTSTRAP_SERVERS": f"{dev.host}:{dev.kafka_port}",
            "GAR_DEV__KAFKA_PORT": str(dev.kafka_port),
            "GAR_DEV__KAFKA_CONTROLLER_PORT": str(dev.kafka_controller_port),
            "GAR_DEV__STATE_DIR": str(dev.state_dir),
            # workers sign their decisions, as a deployment with a key does
            "GAR_DECISION_MAC__KEY": secrets.token_urlsafe(32),
        }
    )
    return broker


async def one(settings: Settings, config: str, n: int, tag: str) -> bl.Window:
    if config == "raw":
        return await measure_raw(settings, n, tag)
    k = int(config.rsplit("_", 1)[1])
    app = bl.with_app_id(settings, f"{settings.app_id}-{tag}-w{k}")
    await bl.create_topics(app, load_catalog(app))
    try:
        return await measure_router(app, n, k)
    finally:
        await _delete_app_topics(app)


async def _delete_app_topics(app: Settings) -> None:
    """The configuration's changelogs (its app id's), so the next one meets the same count."""
    from aiokafka.admin import AIOKafkaAdminClient

    from streams.kafka.clients import client_kwargs

    admin = AIOKafkaAdminClient(**client_kwargs(app.kafka))
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(app.app_id)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


async def throughput(n: int, rounds: int, warmup: bool) -> dict[str, Any]:
    settings = bl.run_settings(2)
    wl = bl.build_workload(settings, n)
    await bl.create_topics(settings, wl.catalog)
    await bl.publish_policy_and_carbon(settings, wl)
    await bl.publish_requests(settings, wl.values)
    if warmup:
        await measure_raw(settings, n, "warmup")
    runs: dict[str, list[bl.Window]] = {c: [] for c in CONFIGS}
    for r in range(rounds):
        order = CONFIGS if r % 2 == 0 else tuple(reversed(CONFIGS))
        for config in order:
            runs[config].append(await one(settings, config, n, f"r{r}"))
            print(f"round {r} {config}: {runs[config][-1].rate_per_s:,.0f}/s", flush=True)
    await bl.delete_run_topics(settings)
    return summarise(runs, n, wl)


def _med(xs: list[float]) -> float:
    return float(statistics.median(xs))


def summarise(runs: dict[str, list[bl.Window]], n: int, wl: bl.Workload) -> dict[str, Any]:
    raw = runs["raw"]
    out: dict[str, Any] = {
        "requests": n,
        "rounds": len(raw),
        "mean_request_bytes": round(wl.mean_bytes),
        "candidates": wl.catalog.n_candidates,
        "raw_msg_per_s": [round(w.rate_per_s) for w in raw],
        "raw_msg_per_s_median": round(_med([w.rate_per_s for w in raw])),
        "raw_window_s": [round(w.seconds, 2) for w in raw],
    }
    for config in CONFIGS[1:]:
        ws = runs[config]
        ratios = [w.rate_per_s / r.rate_per_s for w, r in zip(ws, raw, strict=True)]
        out[config] = {
            "decisions_per_s": [round(w.rate_per_s) for w in ws],
            "decisions_per_s_median": round(_med([w.rate_per_s for w in ws])),
            "ratio_to_raw": [round(x, 4) for x in ratios],
            "ratio_to_raw_median": round(_med(ratios), 4),
            "cpu_us_per_decision_median": round(_med([w.cpu_us_per_record for w in ws]), 1),
            "broker_cpu_us_per_decision_median": _maybe_med(
                [w.broker_cpu_us_per_record for w in ws]
            ),
            "worker_cores_used_median": round(_med([w.cpu_s / w.seconds for w in ws]), 2),
            "rss_mb_max": round(max(w.rss_mb_max for w in ws)),
        }
    one = runs["workers_1"]
    two = runs["workers_2"]
    scaling = [b.rate_per_s / a.rate_per_s for a, b in zip(one, two, strict=True)]
    out["workers_2"]["scaling_vs_1"] = [round(x, 2) for x in scaling]
    out["workers_2"]["scaling_vs_1_median"] = round(_med(scaling), 2)
    return out


def _maybe_med(xs: list[float | None]) -> float | None:
    got = [x for x in xs if x is not None]
    return round(_med(got), 1) if got else None


async def audit_from_broker(n: int) -> dict[str, Any]:
    """One worker decides ``n`` requests under a prefix of its own; ``gar audit`` then reads
    them (and their contexts) back and re-derives every one."""
    from streams.audit.reader import ReadRange
    from streams.audit.run import AuditRequest, run_audit

    settings = bl.run_settings(2)
    wl = bl.build_workload(settings, n)
    await bl.create_topics(settings, wl.catalog)
    await bl.publish_policy_and_carbon(settings, wl)
    await bl.publish_requests(settings, wl.values)
    try:
        await measure_router(settings, n, 1)
        t0, c0 = time.monotonic(), time.process_time()
        report, rows = await asyncio.to_thread(
            run_audit, settings, AuditRequest(ReadRange(), check_inputs=False, outcomes=False)
        )
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
    finally:
        await bl.delete_run_topics(settings)
    macs = report.macs
    return {
        "decisions": report.rows,
        "rederived": report.rederived,
        "mismatches": len(report.mismatches),
        "mac_verified": None if macs is None else macs.verified,
        "contexts": report.contexts,
        "mean_record_bytes": round(sum(len(r.raw or b"") for r in rows) / max(len(rows), 1), 1),
        "rederive_per_s": round(report.rederived / report.rederive_s)
        if report.rederive_s
        else None,
        "audit_wall_s": round(wall, 2),
        "audit_per_s_wall": round(report.rows / wall),
        "audit_cpu_s": round(cpu, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=150_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--levels", default="0.5", help="latency: fractions of this run's maximum")
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--audit-requests", type=int, default=50_000)
    ap.add_argument("--skip", default="", help="comma-separated: latency,memory,audit")
    ap.add_argument("--no-record", action="store_true", help="print only; no results.jsonl entry")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    facts = bl.machine_facts()
    facts["code"] = bl.use_code(None)
    broker = start_private_broker()
    res: dict[str, Any] = {"broker": "private, fresh (no other topics)"}
    try:
        res["throughput"] = asyncio.run(throughput(args.requests, args.rounds, not args.no_warmup))
        print(res["throughput"], flush=True)
        if "latency" not in skip:
            import latency

            max_rate = float(res["throughput"]["workers_1"]["decisions_per_s_median"])
            levels = [float(x) for x in args.levels.split(",")]
            res["latency"] = asyncio.run(
                latency.run(levels, args.latency_seconds, max_rate, 3.0, 2)
            )
            print(res["latency"], flush=True)
        if "audit" not in skip:
            res["audit"] = asyncio.run(audit_from_broker(args.audit_requests))
            print(res["audit"], flush=True)
        if "memory" not in skip:
            import memory

            res["memory"] = asyncio.run(memory.worker_run(8, 16, 10_000, 4))
            print(res["memory"], flush=True)
    finally:
        broker.kill()
        shutil.rmtree(broker.dev.state_dir, ignore_errors=True)
    body = report_md(res)
    print(body)
    if not args.no_record:
        bl.record("goals side by side", facts, res, body)


def report_md(res: dict[str, Any]) -> str:
    t = res["throughput"]
    rows = [
        f"Private fresh broker; {t['requests']:,} real trace requests ({t['mean_request_bytes']} "
        f"B), K = {t['candidates']}, {t['rounds']} rounds after a warm-up, medians. Raw "
        f"pass-through {t['raw_msg_per_s']} msg/s (median {t['raw_msg_per_s_median']:,}).",
        "",
        "| workers | decisions/s (median) | ratio to raw, per round | median | CPU µs/decision | "
        "broker µs/decision | scaling vs 1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in ("workers_1", "workers_2"):
        w = t[k]
        rows.append(
            f"| {k[-1]} | {w['decisions_per_s_median']:,} | "
            f"{', '.join(f'{x:.1%}' for x in w['ratio_to_raw'])} | "
            f"{w['ratio_to_raw_median']:.1%} | {w['cpu_us_per_decision_median']} | "
            f"{w['broker_cpu_us_per_decision_median']} | {w.get('scaling_vs_1_median', '-')} |"
        )
    for lv in res.get("latency", {}).get("levels", []):
        a = lv["request_to_decision"]
        rows.append(
            f"\nLatency at {lv['load']:.0%} of {res['latency']['max_rate_per_s']:,}/s "
            f"({lv['achieved_rate_per_s']:,}/s achieved): request -> decision p50 "
            f"{a.get('p50_ms')} / p99 {a.get('p99_ms')} ms; -> dispatch p50 {lv.get('p50_ms')} "
            f"/ p99 {lv.get('p99_ms')} ms."
        )
    if "audit" in res:
        a = res["audit"]
        rows.append(
            f"\nAudit of {a['decisions']:,} decisions read back from the broker: "
            f"{a['rederived']:,} re-derived, {a['mismatches']} mismatches, "
            f"{a['mac_verified']} MACs verified, re-derivation {a['rederive_per_s']}/s, "
            f"the whole audit {a['audit_per_s_wall']:,}/s wall; records {a['mean_record_bytes']} B."
        )
    if "memory" in res:
        m = res["memory"]
        rows.append(
            f"\nMemory: {m['tenants']:,} tenants x {m['models']} models x {m['zones']} zones: "
            f"RSS max {m['rss_mb_max']} MB (idle {m['rss_mb_idle']})."
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
