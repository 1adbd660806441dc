"""Throughput regression check: a short router_e2e run (one worker, raw pass-through before and
after it, same requests) that exits 1 when the router/raw ratio falls below the recorded floor
in ``benchmarks/floor.json``, CPU per decision rises above its ceiling, or the in-process
routing step (``route_inprocess.py``, no Kafka) costs more than its ceiling.

Run by ``make bench`` (``scripts/bench.sh`` runs every ``benchmarks/bench_*.py``):

    .venv/bin/python benchmarks/bench_regression.py [--requests 40000] [--record]

The floor is a ratio, not a rate, because the 2 cores are shared with the broker and the rest
of the team; CPU µs per decision (worker CPU seconds / decisions) does not depend on how many
cores are free. Raise the floor (edit floor.json) when a change makes the ratio stick higher.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import benchlib as bl
import router_e2e

FLOOR_FILE = Path(__file__).resolve().parent / "floor.json"


# Long on purpose: the gate's steps (end-to-end run, in-process run, each check) in the order
# the docstring lists them.
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=40_000)
    ap.add_argument("--record", action="store_true", help="append the run to results.jsonl")
    ap.add_argument(
        "--floor",
        type=float,
        default=None,
        help="override the recorded ratio floor (e.g. to see the failure path)",
    )
    args = ap.parse_args()
    floor = json.loads(FLOOR_FILE.read_text())
    if args.floor is not None:
        floor["router_to_raw_ratio_floor"] = args.floor
    e2e = router_e2e.parse_args(["--requests", str(args.requests), "--workers", "1"])
    facts, res = router_e2e.run(e2e)
    one = res["workers_1"]
    failures = []
    # The routing step without Kafka (route_inprocess.py): far less noisy than the end-to-end
    # ratio on shared cores, so its ceiling can sit close to the measured cost.
    ceiling = floor.get("inprocess_us_per_request_ceiling")
    if ceiling is not None:
        out = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).with_name("route_inprocess.py")),
                "--requests",
                "20000",
                "--repeat",
                "3",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        inproc = json.loads(out.strip().splitlines()[-1])
        res["inprocess"] = inproc
        if inproc["us_per_request"] > ceiling:
            failures.append(
                f"in-process routing {inproc['us_per_request']} µs/request > ceiling {ceiling}"
            )
    if one["ratio_to_raw"] < floor["router_to_raw_ratio_floor"]:
        failures.append(
            f"router/raw ratio {one['ratio_to_raw']:.4f} < floor "
            f"{floor['router_to_raw_ratio_floor']}"
        )
    if one["cpu_us_per_decision"] > floor["cpu_us_per_decision_ceiling"]:
        failures.append(
            f"worker CPU {one['cpu_us_per_decision']} µs/decision > ceiling "
            f"{floor['cpu_us_per_decision_ceiling']}"
        )
    res["floor"] = floor
    res["passed"] = not failures
    if args.record:
        bl.record(
            "regression check",
            facts,
            res,
            router_e2e.body(res) + f"\nFloor {floor['router_to_raw_ratio_floor']}, CPU ceiling "
            f"{floor['cpu_us_per_decision_ceiling']} µs: "
            f"{'passed' if not failures else 'FAILED: ' + '; '.join(failures)}\n",
        )
    else:
        print(json.dumps({"bench": "regression check", "machine": facts, **res}))
    if failures:
        print(
            "\n"
            + "!" * 72
            + "\nBENCH REGRESSION: "
            + "; ".join(failures)
            + f"\n(floors in {FLOOR_FILE}; load average at start "
            f"{facts['load_avg_start']})\n" + "!" * 72,
            file=sys.stderr,
        )
        sys.exit(1)
    print(
        f"bench regression check passed: ratio {one['ratio_to_raw']:.4f} >= "
        f"{floor['router_to_raw_ratio_floor']}, {one['cpu_us_per_decision']} µs/decision <= "
        f"{floor['cpu_us_per_decision_ceiling']}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
