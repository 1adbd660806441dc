"""Memory per worker at 10,000 tenants with 8 models x 16 zones, and how cost grows.

1. Worker: a synthetic catalog of ``--models`` x ``--zones`` (the real catalog's model specs,
   cloned when more are asked for; one region per real Electricity Maps zone, so the real carbon
   feed covers every zone), ``--tenants`` tenants, ``--per-tenant`` requests each, routed by one
   ``gar worker``. RSS of the worker process (psutil): idle after start, maximum while routing,
   and after routing (tenant states, dedupe ids and Faust table copies all resident).
2. Core-level table: ``decide_batch`` (gar-pd) in a fresh subprocess per row of (models,
   zones, tenants): µs per decision in batches of 1,000, and the RSS growth from holding the
   tenant states, per tenant, plus the size of one tenant's changelog value.

    .venv/bin/python benchmarks/memory.py [--tenants 10000] [--models 8] [--zones 16]
    .venv/bin/python benchmarks/memory.py --core-only
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import numpy as np
import orjson
import psutil

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import benchlib as bl

from streams.app.catalog import DEFAULT_CATALOG_PATH
from streams.core import (
    Catalog,
    EstimatorState,
    IntensityReading,
    IntensityView,
    PolicyConfig,
    Request,
    RoutingContext,
    TenantState,
    get_policy,
)
from streams.kafka.topics import TopicLayout
from streams.schema.records import encode, request_record

ZONES = [
    "US-MIDA-PJM",
    "US-CAL-CISO",
    "GB",
    "DE-LU",
    "SG",
    "AU-NSW",
    "AU-VIC",
    "BR-SP",
    "CA-ON",
    "CL-SIC",
    "IN-WE",
    "JP-TK",
    "KR",
    "US-NY-NYIS",
    "US-TEX-ERCO",
    "ZA",
]
DATASETS = ["gsm8k", "mmlu", "winogrande", "hellaswag"]
START_MS = 1_685_491_200_000  # 2023-05-31: inside the shared carbon data
CORE_ROWS = [
    (8, 4, 1_000),
    (8, 16, 1_000),
    (8, 16, 10_000),
    (16, 16, 10_000),
    (8, 32, 10_000),
    (32, 16, 10_000),
    (8, 16, 50_000),
]


def synthetic_catalog(models: int, zones: int, seed: int = 0) -> dict[str, Any]:
    """``models`` x ``zones`` deployments from the real catalog's model specs and clients."""
    rng = np.random.default_rng(seed)
    base = json.loads(DEFAULT_CATALOG_PATH.read_text())
    clients = sorted(base["regions"][0]["rtt_ms"])
    specs = []
    for i in range(models):
        m = dict(base["models"][i % len(base["models"])])
        m.pop("notes", None)
        if i >= len(base["models"]):
            m["name"] = f"{m['name']}-c{i // len(base['models'])}"
        specs.append(m)
    regions = []
    for j in range(zones):
        zone = ZONES[j % len(ZONES)]
        regions.append(
            {
                "name": zone if j < len(ZONES) else f"{zone}-r{j // len(ZONES)}",
                "zone": zone,
                "pue": round(float(rng.uniform(1.1, 1.5)), 2),
                "rtt_ms": {c: round(float(rng.uniform(5, 250)), 1) for c in clients},
            }
        )
    return {
        "format": "gar-catalog/1",
        "version": f"bench-{models}x{zones}",
        "models": specs,
        "regions": regions,
        "deployments": [{"model": m["name"], "region": r["name"]} for m in specs for r in regions],
    }


def synthetic_requests(cat: Catalog, tenants: int, n: int, seed: int = 1) -> list[Request]:
    """Every tenant first once (round-robin), then uniformly random tenants."""
    rng = np.random.default_rng(seed)
    clients = sorted(cat.regions[0].rtt_ms)
    rest = rng.integers(0, tenants, max(0, n - tenants))
    who = np.concatenate([np.arange(min(tenants, n)), rest])
    ds = rng.integers(0, len(DATASETS), n)
    cl = rng.integers(0, len(clients), n)
    tok = rng.integers(50, 2_000, n)
    return [
        Request(
            f"mem-{seed}-{i}",
            f"mt-{who[i]:06d}",
            DATASETS[ds[i]],
            int(tok[i]),
            None,
            clients[cl[i]],
            START_MS + 20 * i,
        )
        for i in range(n)
    ]


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def core_row(models: int, zones: int, tenants: int) -> dict[str, Any]:
    cat = Catalog.from_dict(synthetic_catalog(models, zones))
    cfg = PolicyConfig.preset(
        "balanced", default_budget_g=2.0, latency_slo_ms=8_000.0, intensity_max_age_ms=10**13
    )
    view = IntensityView.from_readings(
        IntensityReading(z, 100.0 + 40 * i, START_MS, source="bench", source_offset=i)
        for i, z in enumerate(sorted({r.zone for r in cat.regions}))
    )
    ctx = RoutingContext.build(cat, cfg, EstimatorState(cat), view)
    pol = get_policy("gar-pd")
    reqs = synthetic_requests(cat, tenants, tenants + 10_000)
    gc.collect()
    rss0 = rss_mb()
    states: dict[str, TenantState] = {}
    t0 = time.perf_counter()
    for k in range(0, len(reqs), 1_000):
        new, _ = pol.decide_batch(ctx, states, reqs[k : k + 1_000])
        states.update(new)
    dt = time.perf_counter() - t0
    del reqs
    gc.collect()
    rss1 = rss_mb()
    # Exact Python-heap size of the states: rebuild them from their dicts under tracemalloc
    # (RSS deltas at 1k tenants are dominated by allocator and numpy noise).
    dicts = [s.to_dict() for s in states.values()]
    value_bytes = np.mean([len(orjson.dumps(d)) for d in dicts[:500]])
    tracemalloc.start()
    copies = [TenantState.from_dict(d) for d in dicts]
    state_bytes, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del copies
    return {
        "models": models,
        "zones": zones,
        "candidates": cat.n_candidates,
        "tenants": tenants,
        "us_per_decision": round(1e6 * dt / (tenants + 10_000), 1),
        "rss_mb": round(rss1),
        "rss_growth_mb": round(rss1 - rss0, 1),
        "state_kb_per_tenant": round(state_bytes / 1024 / tenants, 2),
        "changelog_bytes_per_tenant": round(float(value_bytes)),
    }


def core_table() -> list[dict[str, Any]]:
    rows = []
    for m, z, t in CORE_ROWS:
        out = subprocess.run(
            [sys.executable, __file__, "--row", str(m), str(z), str(t)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


async def worker_run(models: int, zones: int, tenants: int, per_tenant: int) -> dict[str, Any]:
    from streams.tools.carbon_feed import carbon_dir, feed_carbon, merged_events
    from streams.tools.kafka_io import producer

    bl.LOG_DIR.mkdir(parents=True, exist_ok=True)
    cat_path = bl.LOG_DIR / f"catalog-{models}x{zones}.json"
    cat_path.write_text(json.dumps(synthetic_catalog(models, zones)))
    cat = Catalog.load(cat_path)
    settings = bl.run_settings(2, catalog_path=cat_path)
    lay = TopicLayout.from_settings(settings, cat.model_names)
    n = tenants * per_tenant
    reqs = synthetic_requests(cat, tenants, n)
    await bl.create_topics(settings, cat)
    cfg = PolicyConfig.preset("balanced", default_budget_g=2.0, latency_slo_ms=8_000.0)
    prod = producer(settings)
    await prod.start()
    try:
        await prod.send_and_wait(
            lay.policy,
            orjson.dumps(
                {
                    "schema_version": 1,
                    "scope": "global",
                    "policy_name": "gar-pd",
                    "config": cfg.to_dict(),
                }
            ),
            key=b"global",
        )
    finally:
        await prod.stop()
    end_ms = reqs[-1].ts_ms + 3_600_000
    # The package ships 5 zones; 16 need the full public data (beside the checkout, as the
    # tests read it), unless GAR_DATA__DIR names a directory.
    carbon = carbon_dir(settings)
    shared = bl.REPO.parent / "shared" / "data"
    if "GAR_DATA__DIR" not in os.environ and shared.is_dir():
        carbon = shared / carbon.relative_to(settings.data.dir)
    await feed_carbon(
        settings,
        merged_events(
            carbon,
            sorted(set(ZONES[:zones])),
            start_ms=START_MS - 7_200_000,
            end_ms=end_ms,
        ),
    )
    worker = bl.spawn_worker(settings, "memory")
    proc = psutil.Process(worker.pid)
    try:
        ready = bl.stable_group(settings, settings.app_id, 1)
        deadline = time.monotonic() + 120.0
        while not await ready():
            bl.check_alive([worker])  # a worker that died at start ends the run at once
            if time.monotonic() > deadline:
                raise TimeoutError("the worker's group never became stable in 120 s")
            await asyncio.sleep(0.5)
        await asyncio.sleep(3.0)
        idle = proc.memory_info().rss / 2**20
        values = [(r.tenant.encode(), encode(request_record(r))) for r in reqs]
        pub = asyncio.create_task(bl.publish_requests(settings, values))
        win = await bl.watch(
            settings, [lay.decisions, lay.dead_letter], n, [worker.pid], hi=1.0, timeout_s=900.0
        )
        await pub
        await asyncio.sleep(3.0)
        after = proc.memory_info().rss / 2**20
    finally:
        bl.stop([worker])
        await bl.delete_run_topics(settings)
    return {
        "models": models,
        "zones": zones,
        "candidates": cat.n_candidates,
        "tenants": tenants,
        "requests": n,
        "metrics_on": settings.influx.enabled,
        "batch_max": settings.worker.batch_max,
        "rss_mb_idle": round(idle),
        "rss_mb_max": round(max(win.rss_mb_max, after)),
        "rss_mb_after": round(after),
        "rss_kb_per_tenant_incl_dedupe": round(1024 * (after - idle) / tenants, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tenants", type=int, default=10_000)
    ap.add_argument("--per-tenant", type=int, default=4, help="requests per tenant")
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--zones", type=int, default=16)
    ap.add_argument("--core-only", action="store_true", help="only the core-level table")
    ap.add_argument("--worker-only", action="store_true", help="skip the core-level table")
    ap.add_argument("--no-record", action="store_true", help="print only; no results.jsonl entry")
    ap.add_argument(
        "--row",
        nargs=3,
        type=int,
        metavar=("MODELS", "ZONES", "TENANTS"),
        help="(internal) one core-level row, printed as JSON",
    )
    ap.add_argument(
        "--code",
        default=None,
        metavar="REF",
        help="run the worker on streams/ as committed at REF (default: working tree)",
    )
    args = ap.parse_args()
    if args.row:
        print(json.dumps(core_row(*args.row)))
        return
    facts = bl.machine_facts()
    facts["code"] = bl.use_code(args.code)
    res: dict[str, Any] = {}
    if not args.core_only:
        res["worker"] = asyncio.run(
            worker_run(args.models, args.zones, args.tenants, args.per_tenant)
        )
    res["core"] = [] if args.worker_only else core_table()
    body = []
    if "worker" in res:
        w = res["worker"]
        body += [
            f"One `gar worker`, synthetic catalog {w['models']} models x {w['zones']} zones "
            f"(K = {w['candidates']}), {w['tenants']:,} tenants, {w['requests']:,} requests "
            "(every id held by the dedupe index), metrics on.",
            "",
            "| RSS idle MB | RSS max MB | RSS after MB | KB per tenant (incl. dedupe ids) |",
            "|---|---|---|---|",
            f"| {w['rss_mb_idle']} | {w['rss_mb_max']} | {w['rss_mb_after']} | "
            f"{w['rss_kb_per_tenant_incl_dedupe']} |",
            "",
        ]
    if res["core"]:
        body += [
            "Core only (`decide_batch`, gar-pd, batches of 1,000, fresh process per row; "
            "state = traced Python heap of the TenantState objects):",
            "",
            "| models | zones | K | tenants | µs/decision | process RSS MB | RSS growth MB | "
            "state KB/tenant | changelog B/tenant |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
    body += [
        f"| {r['models']} | {r['zones']} | {r['candidates']} | {r['tenants']:,} | "
        f"{r['us_per_decision']} | {r['rss_mb']} | {r['rss_growth_mb']} | "
        f"{r['state_kb_per_tenant']} | "
        f"{r['changelog_bytes_per_tenant']} |"
        for r in res["core"]
    ]
    if args.no_record:
        print(json.dumps(res))
        return
    bl.record("memory and scaling", facts, res, "\n".join(body) + "\n")


if __name__ == "__main__":
    main()
