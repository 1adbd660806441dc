"""Audit replay speed, in process: decisions.v2 records made by the worker's routing step
(``Router.route_batch``: real trace requests, 100 tenants, the packaged catalog, the end-to-end
benchmarks' gar-pd policy, one routing context per batch as a live worker's estimator refresh
makes), then ``gar audit``'s pass over them without Kafka: contexts rebuilt from their records,
every decision re-derived bit for bit, the dual chains and the MAC chain checked, summarised.

Prints decisions/s (CPU, best of ``--repeat``) for the re-derivation alone and for the whole
pass, and the mean record size. The goal is >= 20k decisions/s re-derived.

    .venv/bin/python benchmarks/bench_audit.py [--requests 20000] [--batch 1000] [--no-record]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import benchlib as bl
import orjson
from route_inprocess import _Producer, bench_policy

from streams.app.dedupe import DedupeIndex
from streams.app.router import RawMessage, Router, tenant_map
from streams.app.sink import BatchSink
from streams.audit.contexts import ContextIndex
from streams.audit.reader import DecisionRow
from streams.audit.rederive import Rederiver
from streams.audit.rederive_rows import rederive_rows
from streams.audit.verify import audit_rows
from streams.core import EstimatorState, RoutingContext, get_policy
from streams.core.context_inputs import ContextInputs
from streams.core.inputs import Completion
from streams.kafka.topics import TopicLayout
from streams.schema.contexts import catalog_digest, context_bytes
from streams.schema.decision_mac import DecisionSigner

KEY = b"bench-audit-key-0123456789"


def make_records(n: int, batch: int) -> tuple[Any, list[DecisionRow], list[DecisionRow]]:
    wl = bl.build_workload(bl.run_settings(2), n, run_id="audit")
    cat = wl.catalog
    cfg = bench_policy(wl)
    layout = TopicLayout.from_settings(wl.settings, cat.model_names)
    router = Router(
        cat,
        layout,
        get_policy("gar-pd"),
        tenant_map({}, "tcl"),
        DedupeIndex({}, "dcl", 24 * 3_600_000, 10 * n),
        signer=DecisionSigner("k1", KEY),
    )
    msgs = [
        RawMessage("bench.requests", i % 2, i // 2, None, key, value)
        for i, (key, value) in enumerate(wl.values)
    ]
    est = EstimatorState(cat)
    prod = _Producer()
    contexts: list[DecisionRow] = []
    cat_digest = catalog_digest(cat)

    async def run() -> None:
        for k in range(0, len(msgs), batch):
            # a new context per batch: the estimators learned from a few completions
            for j, (m, r) in enumerate(cat.deployments[:5]):
                est.observe(
                    Completion(
                        f"c{k}-{j}",
                        "t",
                        m,
                        r,
                        "gsm8k",
                        0,
                        900.0 + k % 97,
                        100,
                        200,
                        50.0,
                        j % 2 == 0,
                    )
                )
            ctx = RoutingContext.build(cat, cfg, est)
            digest, value = context_bytes(ContextInputs.of(ctx, "gar-pd", -1), cat_digest)
            contexts.append(
                DecisionRow(
                    "contexts", 0, len(contexts), 0, digest, orjson.loads(value), None, value
                )
            )
            first, second = BatchSink(prod), BatchSink(prod)
            router.route_batch(ctx, msgs[k : k + batch], first, second, digest)
            await first.flush()

    asyncio.run(run())
    rows = [
        DecisionRow(topic, p, offset, 0, None, orjson.loads(value), None, value)
        for (topic, p), records in prod.logs.items()
        if topic.endswith("decisions")
        for offset, value in enumerate(records)
    ]
    return cat, rows, contexts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-record", action="store_true", help="print only; no results.jsonl entry")
    args = ap.parse_args()
    facts = bl.machine_facts()
    cat, rows, ctx_rows = make_records(args.requests, args.batch)
    best_rederive = best_all = float("inf")
    report: Any = None
    for _ in range(args.repeat):
        c0 = time.process_time()
        contexts = ContextIndex.from_rows(cat, ctx_rows)
        done = rederive_rows(rows, None, contexts)
        best_rederive = min(best_rederive, time.process_time() - c0)
        assert all(d == [] for d in done.diffs), [d for d in done.diffs if d][:3]
        c0 = time.process_time()
        contexts = ContextIndex.from_rows(cat, ctx_rows)
        report, _ = audit_rows("d", rows, Rederiver(cat, {}), contexts, {"k1": KEY}, "requests")
        best_all = min(best_all, time.process_time() - c0)
        assert report.ok and report.macs.verified == len(rows)
    n = len(rows)
    res = {
        "decisions": n,
        "contexts": len(ctx_rows),
        "mean_record_bytes": round(sum(len(r.raw or b"") for r in rows) / n, 1),
        "mean_context_bytes": round(sum(len(r.raw or b"") for r in ctx_rows) / len(ctx_rows)),
        "rederive_per_s": round(n / best_rederive),
        "full_audit_per_s": round(n / best_all),
        "mismatches": len(report.mismatches),
        "mac_verified": report.macs.verified,
    }
    print(orjson.dumps(res).decode())
    if not args.no_record:
        body = (
            f"{n:,} decisions.v2 records ({res['mean_record_bytes']} B mean) in {len(ctx_rows)} "
            f"contexts ({res['mean_context_bytes']:,} B mean): re-derived bit for bit at "
            f"**{res['rederive_per_s']:,} decisions/s**; the whole audit pass (contexts, "
            f"re-derivation, dual and MAC chains, summary) at {res['full_audit_per_s']:,}/s "
            "(CPU, best of 3).\n"
        )
        bl.record("audit replay", facts, res, body)


if __name__ == "__main__":
    main()
