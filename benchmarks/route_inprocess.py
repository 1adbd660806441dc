"""In-process cost of the worker's per-batch routing step, without Kafka: what ``app.process``
does for a batch of raw request bytes (``Router.route_batch``, the tenant + dedupe checkpoint,
the sinks filled as for the broker, the decision metrics encoded as line protocol).

Prints µs per request (best of ``--repeat``) and a digest of every decision and dispatch record
(bytes, in output order) under the end-to-end benchmarks' policy, so two code trees can be
compared for speed and identical output (the digest is the "decision records byte-identical"
check of a refactoring):

    .venv/bin/python benchmarks/route_inprocess.py
    cd <elsewhere> && PYTHONPATH=<tree with streams/> <repo>/.venv/bin/python \\
        <repo>/benchmarks/route_inprocess.py

(``benchlib.use_code`` snapshots a commit under var/bench/code-<sha>/.)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import benchlib as bl

import streams.app.router as router_module
from streams.app.dedupe import DedupeIndex
from streams.app.router import RawMessage, Router, tenant_map
from streams.app.sink import BatchSink
from streams.core import PolicyConfig, RoutingContext, get_policy
from streams.kafka.topics import TopicLayout
from streams.metrics import Metrics, MetricsWriter
from streams.metrics.decision_metrics import record_decisions

try:
    from streams.metrics.decision_metrics import DecisionMetrics
except ImportError:  # older trees
    DecisionMetrics = None  # type: ignore[assignment,misc]


class _Batch:
    def __init__(self) -> None:
        self.records: list[tuple[Any, Any, Any]] = []

    def append(self, *, key: Any, value: Any, timestamp: Any) -> object:
        self.records.append((key, value, timestamp))
        return self

    def record_count(self) -> int:
        return len(self.records)


class _Meta:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset


class _Producer:
    """Keeps what was sent (topic, value) in order; offsets count like a broker's."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.ends: dict[tuple[str, int], int] = {}
        self.logs: dict[tuple[str, int], list[bytes]] = {}  # each partition's values in order

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> Any:
        self.sent.extend((topic, v) for _, v, _ in batch.records)
        self.logs.setdefault((topic, partition), []).extend(v for _, v, _ in batch.records)
        base = self.ends.get((topic, partition), 0)
        self.ends[(topic, partition)] = base + len(batch.records)
        fut: asyncio.Future[_Meta] = asyncio.get_running_loop().create_future()
        fut.set_result(_Meta(topic, partition, base))
        return fut

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}


class _Discard:
    def write_lines(self, lines: list[str]) -> None:
        pass

    def close(self) -> None:
        pass


def with_flood(values: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``values`` with one of the poison-flood test's hostile messages after each (keyed like
    the request before it)."""
    sys.path.insert(0, str(bl.REPO / "tests"))
    from support.poison_families import flood

    bad = flood(len(values), per_family=200)
    return [
        kv
        for (key, value), (_, raw) in zip(values, bad, strict=True)
        for kv in ((key, value), (key, raw))
    ]


def bench_policy(wl: bl.Workload) -> PolicyConfig:
    """The policy the end-to-end benchmarks publish (``benchlib.publish_policy_and_carbon``):
    the eval scenario's, its budget spread over the bench tenants."""
    from streams.orchestration.demo import demo_policy

    cfg = dict(demo_policy(wl.settings, len(wl.requests), days=1.0)["config"])
    cfg["default_budget_g"] = sum(cfg["budgets_g"].values()) / len({r.tenant for r in wl.requests})
    cfg["budgets_g"] = {}
    return PolicyConfig.from_dict(cfg)


def _signed() -> dict[str, Any]:
    """The worker's MAC signer with a fixed key (older trees: none)."""
    try:
        from streams.schema.decision_mac import DecisionSigner
    except ImportError:
        return {}
    return {"signer": DecisionSigner("k1", b"route-inprocess-bench-key")}


def _context_digest(ctx: RoutingContext) -> tuple[str, ...]:
    """The digest decisions.v2 records reference (older trees: no argument)."""
    try:
        from streams.core.context_inputs import ContextInputs
        from streams.schema.contexts import catalog_digest, context_bytes
    except ImportError:
        return ()
    return (context_bytes(ContextInputs.of(ctx, "gar-pd", -1), catalog_digest(ctx.catalog))[0],)


async def route_all(
    msgs: list[RawMessage], wl: bl.Workload, batch: int, prod: _Producer, config: PolicyConfig
) -> Router:
    cat = wl.catalog
    layout = TopicLayout.from_settings(wl.settings, cat.model_names)
    router = Router(
        cat,
        layout,
        get_policy("gar-pd"),
        tenant_map({}, "tcl"),
        DedupeIndex({}, "dcl", 24 * 3_600_000, 100_000),
        **_signed(),
    )
    ctx = RoutingContext.build(cat, config)
    digest = _context_digest(ctx)
    metrics = Metrics(MetricsWriter(_Discard(), start=False, buffer_max_points=10**9))
    decision_metrics = None if DecisionMetrics is None else DecisionMetrics(metrics, 1.0)
    for k in range(0, len(msgs), batch):
        part = msgs[k : k + batch]
        first, second, third = BatchSink(prod), BatchSink(prod), BatchSink(prod)
        stats = router.route_batch(ctx, part, first, second, *digest)
        await first.flush()
        router.tenants.checkpoint(third)
        router.dedupe.checkpoint(third)
        await second.flush()
        await third.flush()
        if decision_metrics is None:  # a tree without the accumulator: per batch
            record_decisions(metrics, stats.decisions, budget_window_s=86_400.0)
        else:
            decision_metrics.add(stats.decisions)
            decision_metrics.flush(budget_window_s=86_400.0)
    if decision_metrics is not None:
        decision_metrics.flush(budget_window_s=86_400.0, force=True)
    return router


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--worker-gc",
        action="store_true",
        help="collector settings of `gar worker` (young threshold from the settings, "
        "survivors of the set-up frozen); default: CPython's",
    )
    ap.add_argument(
        "--poison",
        action="store_true",
        help="a hostile message after every request (1:1 flood, the fault suite's hypothesis "
        "families); µs per request then counts both",
    )
    ap.add_argument(
        "--policy-config",
        default=None,
        help='JSON object of PolicyConfig fields over the bench policy, e.g. \'{"mu_pooled": '
        "true}' (pooled accuracy duals: each of the 2 partitions a scope)",
    )
    args = ap.parse_args()
    wl = bl.build_workload(bl.run_settings(2), args.requests, run_id="inprocess")
    values = wl.values
    if args.poison:
        values = with_flood(values)
    msgs = [
        RawMessage("bench.requests", i % 2, i // 2, None, key, value)
        for i, (key, value) in enumerate(values)
    ]
    config = bench_policy(wl)
    overrides = json.loads(args.policy_config) if args.policy_config else {}
    if overrides:
        config = PolicyConfig.from_dict({**config.to_dict(), **overrides})
    if args.worker_gc:
        from streams.app.gc_tuning import freeze_survivors, raise_young_threshold

        raise_young_threshold(wl.settings.worker.gc_gen0_threshold)
        freeze_survivors()
    best = best_cpu = float("inf")
    prod = _Producer()
    for _ in range(args.repeat):
        prod = _Producer()
        t0, c0 = time.perf_counter(), time.process_time()
        asyncio.run(route_all(msgs, wl, args.batch, prod, config))
        best = min(best, time.perf_counter() - t0)
        # Process CPU time: less sensitive than wall time to other jobs on the shared cores.
        best_cpu = min(best_cpu, time.process_time() - c0)
    out = [v for t, v in prod.sent if ".decisions" in t or ".dispatch." in t]
    digest = hashlib.sha256(b"\n".join(out)).hexdigest()[:16]
    print(
        json.dumps(
            {
                "router_module": router_module.__file__,
                "requests": len(msgs),
                "records": len(out),
                "records_sha256_16": digest,
                "us_per_request": round(1e6 * best / len(msgs), 1),
                "cpu_us_per_request": round(1e6 * best_cpu / len(msgs), 1),
                "worker_gc": args.worker_gc,
                "poison": args.poison,
                "policy_config": overrides,
            }
        )
    )


if __name__ == "__main__":
    main()
