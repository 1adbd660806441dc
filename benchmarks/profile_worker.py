"""Where a ``gar worker`` spends its CPU under sustained load (py-spy, sampling, nonblocking).

Publishes ``--requests`` real trace requests (as ``router_e2e.py`` does), starts one worker,
and once its group is stable and 10% of the requests are decided attaches
``py-spy record --nonblocking --format raw`` for ``--seconds``. Idle samples are excluded, so
shares are of busy CPU. Two views of the same samples:

* by area: the innermost frame of each sample that belongs to a known package (our code by
  module, or faust/mode, aiokafka, asyncio, influxdb_client); C time (numpy, orjson) counts
  for the Python frame that called it;
* inclusive time of the hot-path entry points (parse, decide_batch, to_record, ...).

    .venv/bin/python benchmarks/profile_worker.py [--requests 80000] [--seconds 12] [--code REF]

The raw collapsed stacks are kept in ``var/bench/profile-<run>.txt`` (flamegraph input).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import benchlib as bl

from streams.kafka.topics import TopicLayout

# First match wins, innermost frame first. Order: specific before general.
AREAS: list[tuple[str, str]] = [
    ("streams/core/", "core (decide, estimates, tenant state)"),
    ("streams/ingress/", "ingress (parse requests)"),
    ("streams/schema/", "records (schema encode)"),
    ("streams/app/record_bytes.py", "records (decision/dispatch bytes)"),
    ("streams/metrics/", "metrics (influx points)"),
    ("streams/app/checkpoint.py", "app: checkpoint/changelog"),
    ("streams/app/dedupe.py", "app: dedupe"),
    ("streams/app/sink.py", "app: batch sink"),
    ("streams/app/", "app: other glue"),
    ("influxdb_client/", "metrics (influxdb_client)"),
    ("aiokafka/", "aiokafka (consume/produce)"),
    ("faust/", "faust"),
    ("mode/", "mode (faust services)"),
    ("asyncio/", "asyncio event loop"),
    ("numpy/", "numpy (python side)"),
]
ENTRY_POINTS = [
    "route_batch",
    "parse_request",
    "decide_batch",
    "to_record",
    "decision_bytes",
    "dispatch_bytes",
    "record_decisions",
    "dead_letter_bytes",
    "_dead_letter",
    "checkpoint",
    "flush",
    "getmany",
    "take_events",
    "add",
]
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def parse_collapsed(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for f in stack.split(";"):
            m = FRAME.match(f)
            frames.append((m["func"], m["file"]) if m else (f, ""))
        stacks.append((frames, int(count)))
    return stacks


def summarise(stacks: list[tuple[list[tuple[str, str]], int]]) -> dict[str, Any]:
    total = sum(c for _, c in stacks) or 1
    areas: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    entry: Counter[str] = Counter()
    for frames, count in stacks:
        area = "other"
        for _func, file in reversed(frames):
            # py-spy prints paths relative to sys.path entries ("asyncio/events.py"), or
            # absolute ones: match a key at the start or after a slash.
            hit = next(
                (name for key, name in AREAS if file.startswith(key) or f"/{key}" in file), None
            )
            if hit is not None:
                area = hit
                break
        areas[area] += count
        func, file = frames[-1]
        short = "/".join(file.split("/")[-2:])
        leaf[f"{func} ({short})"] += count
        seen = {f.rsplit(".", 1)[-1] for f, _ in frames}  # "Router._decide" -> "_decide"
        for name in ENTRY_POINTS:
            if name in seen:
                entry[name] += count

    def pct(count: int) -> float:
        return round(100.0 * count / total, 1)

    return {
        "samples": total,
        "by_area_pct": {k: pct(v) for k, v in areas.most_common()},
        "inclusive_pct": {k: pct(v) for k, v in entry.most_common()},
        "top_self_pct": {k: pct(v) for k, v in leaf.most_common(15)},
    }


def with_poison(values: list[tuple[bytes, bytes]], seed: int = 0) -> list[tuple[bytes, bytes]]:
    """``values`` with a hostile variant of each one after it (a 1:1 poison flood; the
    variants of ``gar produce --poison``, keyed like the traffic)."""
    from streams.tools.poison import poison

    rng = random.Random(seed)
    out: list[tuple[bytes, bytes]] = []
    for key, value in values:
        out += [(key, value), (key, poison(orjson.loads(value), rng)[0])]
    return out


async def profile(
    n: int, seconds: float, partitions: int, out: Path, poisoned: bool = False
) -> dict[str, Any]:
    settings = bl.run_settings(partitions)
    wl = bl.build_workload(settings, n)
    lay = TopicLayout.from_settings(settings, ())
    await bl.create_topics(settings, wl.catalog)
    await bl.publish_policy_and_carbon(settings, wl)
    values = with_poison(wl.values) if poisoned else wl.values
    await bl.publish_requests(settings, values)
    proc = bl.spawn_worker(settings, "profile")
    try:
        # Wait for the sustained phase (stable group, 10% decided) ...
        await bl.watch(
            settings,
            [lay.decisions, lay.dead_letter],
            len(values),
            [proc.pid],
            ready=bl.stable_group(settings, settings.app_id, 1),
            hi=0.12,
        )
        spy = Path(sys.executable).with_name("py-spy")
        subprocess.run(
            [
                str(spy),
                "record",
                "--pid",
                str(proc.pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "250",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
    finally:
        bl.stop([proc])
        await bl.delete_run_topics(settings)
    return summarise(parse_collapsed(out))


def table(title: str, d: dict[str, float]) -> str:
    rows = [f"| {title} | % of busy samples |", "|---|---|"]
    rows += [f"| `{k}` | {v} |" for k, v in d.items()]
    return "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=80_000)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument(
        "--code",
        default=None,
        metavar="REF",
        help="profile streams/ as committed at REF (default: working tree)",
    )
    ap.add_argument(
        "--summarise", type=Path, default=None, help="only summarise an existing raw py-spy output"
    )
    ap.add_argument(
        "--poison", action="store_true", help="a hostile message after every request (1:1 flood)"
    )
    args = ap.parse_args()
    if args.summarise:
        print(summarise(parse_collapsed(args.summarise)))
        return
    facts = bl.machine_facts()
    facts["code"] = bl.use_code(args.code)
    bl.LOG_DIR.mkdir(parents=True, exist_ok=True)
    out = bl.LOG_DIR / f"profile-{bl.run_settings(1).app_id}.txt"
    res = asyncio.run(profile(args.requests, args.seconds, args.partitions, out, args.poison))
    res["poison"] = args.poison
    res["raw_stacks"] = str(out.relative_to(bl.REPO))
    body = (
        f"py-spy {args.seconds:.0f} s at 250 Hz, nonblocking, {res['samples']} busy samples "
        f"(raw stacks: `{res['raw_stacks']}`).\n\n"
        + table("area (innermost known frame)", res["by_area_pct"])
        + "\n"
        + table("inclusive (stack contains)", res["inclusive_pct"])
        + "\n"
        + table("top self (leaf Python frame)", res["top_self_pct"])
    )
    bl.record("worker profile", facts, res, body)


if __name__ == "__main__":
    main()
