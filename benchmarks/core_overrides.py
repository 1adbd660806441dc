"""In-process cost of routing real trace requests (with their allow-lists) through the core, as
the worker does per batch: ``validate`` each request, then ``decide_batch`` on the valid ones,
on a fresh ``RoutingContext`` (the worker rebuilds it when a view changes). No Kafka.

Prints µs per request (best of ``--repeat``) and a digest of every decision record, so two code
trees can be compared for speed and identical output:

    .venv/bin/python benchmarks/core_overrides.py
    cd <elsewhere> && PYTHONPATH=<tree with streams/> GAR_DATA__DIR=<data dir> \
        <repo>/.venv/bin/python <repo>/benchmarks/core_overrides.py

(``benchlib.use_code`` snapshots a commit under var/bench/code-<sha>/.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import timeit

import orjson

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import benchlib as bl

import streams.core.context as context_module
from streams.core import PolicyConfig, RoutingContext, TenantState, get_policy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    wl = bl.build_workload(bl.run_settings(2), args.requests, run_id="overrides")
    reqs, cat, pol = wl.requests, wl.catalog, get_policy("gar-pd")
    records: list[bytes] = []

    def run(keep: bool = False) -> None:
        records.clear()
        ctx = RoutingContext.build(cat, PolicyConfig())
        states: dict[str, TenantState] = {}
        for k in range(0, len(reqs), 1_000):
            ok = [r for r in reqs[k : k + 1_000] if ctx.validate(r) is None]
            new, decisions = pol.decide_batch(ctx, states, ok)
            states.update(new)
            if keep:  # untimed pass: the records' digest
                records.extend(
                    orjson.dumps(d.to_record(), option=orjson.OPT_SORT_KEYS) for d in decisions
                )

    best = min(timeit.repeat(run, number=1, repeat=args.repeat))
    run(keep=True)
    digest = hashlib.sha256(b"".join(records)).hexdigest()[:16]
    print(
        json.dumps(
            {
                "context_module": context_module.__file__,
                "requests": len(reqs),
                "with_overrides": sum(r.has_overrides for r in reqs),
                "decisions": len(records),
                "records_sha256_16": digest,
                "us_per_request": round(1e6 * best / len(reqs), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
