"""Ingress/edges benchmark (not a test): parse cost per message and tool throughput.

    .venv/bin/python benchmarks/bench_ingress.py [--broker]

1. parse: ``parse_request`` on real trace requests (plain and with allow-lists), the core
   ``Request`` constructor alone (a floor no parser can beat), hostile inputs, completions and
   intensity events, and building + encoding dead-letter records; best of 5 runs, us/message;
2. fleet model: ``FleetModel.complete`` per dispatch order;
3. with ``--broker``: ``gar produce`` throughput (msg/s) into a throwaway topic on the shared
   broker (127.0.0.1:19092).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import timeit
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.realdata import correctness, real_catalog

from streams.config import Settings, TopicSettings
from streams.core.inputs import Request
from streams.ingress import (
    IngressContext,
    Rejected,
    Source,
    parse_completion,
    parse_intensity,
    parse_request,
)
from streams.ingress.dispatch import DispatchOrder
from streams.schema import (
    completion_record,
    dead_letter_record,
    encode,
    request_record,
)
from streams.tools.fleet_model import FleetModel
from streams.tools.poison import poison
from streams.tools.produce import trace_requests


def per_item_us(fn: Callable[[], object], items: int, repeat: int = 5) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat)) / items * 1e6


def loop(
    parse: Callable[..., object], raws: list[bytes], ctx: IngressContext
) -> Callable[[], None]:
    def run() -> None:
        for raw in raws:
            parse(raw, ctx)

    return run


# Long on purpose: one measurement protocol (set-up, timed passes, checks, result row) read
# top to bottom, as the recorded results describe it.
def bench_parse(reqs: list[Request]) -> None:
    ctx = IngressContext.from_catalog(real_catalog())
    plain = [encode(request_record(replace(r, allow_models=None))) for r in reqs]
    lists = [encode(request_record(r)) for r in reqs]
    rng = random.Random(0)
    hostile = [poison(request_record(r), rng)[0] for r in reqs]
    n = len(reqs)
    rows = [
        ("parse_request, no overrides", per_item_us(loop(parse_request, plain, ctx), n)),
        ("parse_request, allow_models list", per_item_us(loop(parse_request, lists, ctx), n)),
        (
            "core Request(...) constructor alone",
            per_item_us(
                lambda: [
                    Request(
                        r.request_id,
                        r.tenant,
                        r.dataset,
                        r.input_tokens,
                        None,
                        r.client_region,
                        r.ts_ms,
                    )
                    for r in reqs
                ],
                n,
            ),
        ),
        (
            "parse_request, hostile mix (Rejected)",
            per_item_us(loop(parse_request, hostile, ctx), n),
        ),
    ]
    sim = FleetModel(real_catalog(), correctness())
    model = real_catalog().model_names[0]
    orders = [
        DispatchOrder(
            r.request_id,
            r.tenant,
            r.dataset,
            model,
            real_catalog().region_names[0],
            0,
            r.input_tokens,
            None,
            r.client_region,
            r.ts_ms,
            "gar-pd",
            "optimal",
        )
        for r in reqs
    ]
    comps = [encode(completion_record(sim.complete(o))) for o in orders]
    rows.append(("parse_completion", per_item_us(loop(parse_completion, comps, ctx), n)))
    event = encode(
        {
            "schema_version": 1,
            "zone": "GB",
            "intensity_g_per_kwh": 91.4,
            "ts_ms": 1_672_531_200_000,
            "source": "electricitymaps-csv",
            "signal_type": "average",
            "estimated": False,
        }
    )
    rows.append(("parse_intensity", per_item_us(loop(parse_intensity, [event] * n, ctx), n)))
    rejected = [
        x
        for x in (parse_request(h, ctx, Source("t", 0, i)) for i, h in enumerate(hostile))
        if isinstance(x, Rejected)
    ]
    rows.append(
        (
            "dead_letter_record + encode",
            per_item_us(
                lambda: [encode(dead_letter_record(r, rejected_at_ms=0)) for r in rejected],
                len(rejected),
            ),
        )
    )
    rows.append(("FleetModel.complete", per_item_us(lambda: [sim.complete(o) for o in orders], n)))
    for name, us in rows:
        print(f"{name:42s} {us:8.2f} us/msg")


def bench_produce(reqs: list[Request]) -> None:
    from streams.kafka.admin import ensure_topics
    from streams.kafka.topics import TopicSpec
    from streams.tools.produce import produce_requests

    settings = Settings(topics=TopicSettings(prefix=f"bench.{uuid.uuid4().hex[:8]}."))
    topic = settings.topics.name(settings.topics.requests)
    asyncio.run(ensure_topics(settings, [TopicSpec(topic, 4)]))
    stats = asyncio.run(produce_requests(settings, reqs))
    print(
        f"gar produce: {stats.sent} requests in {stats.elapsed_s:.2f}s = "
        f"{stats.rate_per_s:,.0f} msg/s  (topic {topic})"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", action="store_true", help="also measure produce throughput")
    ap.add_argument("-n", type=int, default=5000)
    args = ap.parse_args()
    reqs = trace_requests(Settings(), real_catalog(), args.n, seed=1, run_id="bench")
    bench_parse(reqs)
    if args.broker:
        bench_produce(reqs * 4)


if __name__ == "__main__":
    main()
