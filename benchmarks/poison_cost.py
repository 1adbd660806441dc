"""What a rejected message costs a ``gar worker`` end to end, next to a decided one.

Three backlogs, each drained by a fresh worker on its own topics, in alternation (valid, bad,
mixed, valid, bad, mixed, ...) so the machine's drifting load hits all three alike:

* ``valid``: ``--messages`` real trace requests (``router_e2e.py``'s workload);
* ``bad``: as many hostile messages of the fault suite's poison-flood families;
* ``mixed``: the two interleaved 1:1 (what ``tests/faults/test_poison_flood.py`` gates).

Worker CPU (user + system) is measured between 10% and 90% of a backlog's outcomes. Reported:
µs of worker CPU per valid and per bad message, and the flood ratio the test asserts (valid
decisions per worker CPU-second, mixed over valid-only). ``--profile`` also samples the
bad-only drain with py-spy (areas as in ``profile_worker.py``).

    .venv/bin/python benchmarks/poison_cost.py [--messages 20000] [--rounds 3] [--code REF]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import benchlib as bl
import profile_worker as pw
from route_inprocess import with_flood

from streams.kafka.topics import TopicLayout


async def drain(
    values: list[tuple[bytes, bytes]], kind: str, profile_to: Path | None, **worker: Any
) -> dict[str, Any]:
    """A fresh worker drains ``values`` (pre-published); worker CPU per message."""
    settings = bl.run_settings(2, **worker)
    wl = bl.build_workload(settings, 10)  # topics, catalog and policy of the bench runs
    lay = TopicLayout.from_settings(settings, ())
    await bl.create_topics(settings, wl.catalog)
    await bl.publish_policy_and_carbon(settings, wl)
    await bl.publish_requests(settings, values)
    proc = bl.spawn_worker(settings, f"poison-{kind}")
    ready = bl.stable_group(settings, settings.app_id, 1)
    spy = None
    try:
        if profile_to is not None:  # start sampling once the worker routes (not its start-up)
            while not await ready():
                await asyncio.sleep(0.1)
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    *("record", "--pid", str(proc.pid), "--duration", "4", "--rate", "250"),
                    *("--nonblocking", "--format", "raw", "--output", str(profile_to)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        window = await bl.watch(
            settings,
            [lay.decisions, lay.dead_letter],
            len(values),
            [proc.pid],
            ready=ready,
        )
    finally:
        if spy is not None:
            spy.wait(60)
        bl.stop([proc])
        await bl.delete_run_topics(settings)
    return {
        "kind": kind,
        "messages": window.records,
        "cpu_us_per_message": 1e6 * window.cpu_s / window.records,
        "wall_s": window.seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="py-spy the first round's drains")
    ap.add_argument("--code", default=None, metavar="REF", help="workers run streams/ at REF")
    ap.add_argument("--batch-max", type=int, default=None, help="worker.batch_max (default: its)")
    ap.add_argument("--tenants", type=int, default=100, help="tenants of the valid requests")
    args = ap.parse_args()
    facts = bl.machine_facts()
    facts["code"] = bl.use_code(args.code)
    valid = bl.build_workload(bl.run_settings(2), args.messages, tenants=args.tenants).values
    worker = {} if args.batch_max is None else {"batch_max": args.batch_max}
    mixed = with_flood(valid[: args.messages // 2])
    bad = [kv for i, kv in enumerate(with_flood(valid)) if i % 2 == 1]
    runs: dict[str, list[float]] = {"valid": [], "bad": [], "mixed": []}
    profiles: dict[str, dict[str, Any]] = {}
    bl.LOG_DIR.mkdir(parents=True, exist_ok=True)
    out = bl.LOG_DIR / f"profile-poison-{bl.run_settings(1).app_id}.txt"
    for r in range(args.rounds):
        for kind, values in (("valid", valid), ("bad", bad), ("mixed", mixed)):
            want = out.with_suffix(f".{kind}.txt") if args.profile and r == 0 else None
            res = asyncio.run(drain(values, kind, want, **worker))
            runs[kind].append(res["cpu_us_per_message"])
            print(res, flush=True)
            if want is not None:
                profiles[kind] = pw.summarise(pw.parse_collapsed(want))
    v, b, m = (statistics.median(runs[k]) for k in ("valid", "bad", "mixed"))
    # mixed: one valid per two messages -> valid per CPU-s = 1 / (2 m); valid-only: 1 / v.
    ratios = [va / (2 * mi) for va, mi in zip(runs["valid"], runs["mixed"], strict=True)]
    res = {
        "messages": args.messages,
        "rounds": args.rounds,
        "batch_max": args.batch_max,
        "tenants": args.tenants,
        "cpu_us_per_valid": round(v, 1),
        "cpu_us_per_bad": round(b, 1),
        "bad_over_valid": round(b / v, 2),
        "cpu_us_per_mixed_message": round(m, 1),
        "flood_ratio_per_round": [round(x, 2) for x in ratios],
        "runs_us": {k: [round(x, 1) for x in xs] for k, xs in runs.items()},
    }
    if profiles:
        res["profiles"] = profiles
        res["raw_stacks"] = str(out.relative_to(bl.REPO)).replace(".txt", ".<kind>.txt")
    body = (
        f"Worker CPU per message, median of {args.rounds} alternating rounds of "
        f"{args.messages:,} messages: valid {v:.1f} µs, bad {b:.1f} µs ({b / v:.2f} of a "
        f"valid one); 1:1 mixed {m:.1f} µs per message, so the flood ratio (valid per worker "
        f"CPU-second, mixed over valid-only) is {', '.join(f'{x:.2f}' for x in ratios)}.\n"
    )
    for kind, prof in profiles.items():
        body += "\n" + pw.table(f"{kind}: area (innermost known frame)", prof["by_area_pct"])
        body += "\n" + pw.table(f"{kind}: top self", prof["top_self_pct"])
    bl.record("poison cost", facts, res, body)


if __name__ == "__main__":
    main()
