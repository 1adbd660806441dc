"""Offline evaluation speed: the hindsight LPs with and without the efficient-candidate
reduction, and one policy's simulation with and without the latency-quantile cache, side by
side on one scenario built from the shared data.

    .venv/bin/python benchmarks/bench_oracle.py [--zones all] [--requests 30000] [--days 21]
        [--policy gar-pd] [--no-unreduced]

The unreduced LPs and the uncached simulation are the code paths the evaluation used before
(``oracle_lp(..., reduce=False)``; ``WindowedSketch.quantiles`` re-merging every window on
each read); both variants must give the same optimum / the same decisions, and the script
checks that before it records the times.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import git, machine_facts, record

from streams.config import load_settings
from streams.core import latency
from streams.eval.oracles import run_oracle
from streams.eval.runner import run_policy
from streams.eval.scenario import ScenarioSettings, build_scenario
from streams.eval.world import Outcomes


def _uncached_quantiles(
    self: latency.WindowedSketch, qs: tuple[float, ...]
) -> tuple[list[float | None], float]:
    m = self.merged()
    if m.count <= 0:
        return [None] * len(qs), 0.0
    return [m.get_quantile_value(q) for q in qs], float(m.count)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zones", default="all")
    ap.add_argument("--requests", type=int, default=30_000)
    ap.add_argument("--days", type=float, default=21.0)
    ap.add_argument("--policy", default="gar-pd")
    ap.add_argument("--no-unreduced", action="store_true", help="skip the slow variants")
    args = ap.parse_args()
    data: Path = load_settings().data.dir
    carbon = data / "carbon/electricitymaps-hourly-2023"
    zones = (
        tuple(sorted(p.name.split(".")[0] for p in carbon.glob("*.csv*")))
        if args.zones == "all"
        else tuple(args.zones.split(","))
    )
    facts = machine_facts()
    facts["code"] = f"commit {git('rev-parse', '--short', 'HEAD')}"
    scn = build_scenario(
        ScenarioSettings(
            correctness=tuple(sorted((data / "correctness").glob("*.csv*"))),
            energy=data / "energy/mlenergy-v3-llm.csv",
            carbon_dir=carbon,
            zones=zones,
            n_requests=args.requests,
            days=args.days,
        )
    )
    everything: Outcomes = scn.world.all_outcomes()
    allowed_pairs = int((scn.trace.correct[:, scn.catalog.cand_model_idx] >= 0).sum())
    rows: list[dict[str, Any]] = []
    for label, name, kw in (
        ("oracle-lp", "oracle-lp", {}),
        ("oracle-perfect", "oracle-perfect", {}),
        ("oracle-lp, daily windows", "oracle-lp", {"window_floors": True}),
    ):
        fast, t_fast = _timed(lambda n=name, k=kw: run_oracle(n, scn, everything, **k))
        row: dict[str, Any] = {
            "lp": label,
            "reduced_s": round(t_fast, 2),
            "co2_g": fast.result.co2_g,
        }
        if not args.no_unreduced:
            slow, t_slow = _timed(
                lambda n=name, k=kw: run_oracle(n, scn, everything, reduce=False, **k)
            )
            row["unreduced_s"] = round(t_slow, 2)
            row["speedup"] = round(t_slow / t_fast, 1)
            row["co2_g_unreduced"] = slow.result.co2_g
            row["relative_gap"] = (slow.result.co2_g - fast.result.co2_g) / slow.result.co2_g
        rows.append(row)
    cached, t_cached = _timed(lambda: run_policy(scn, args.policy))
    sim: dict[str, Any] = {"policy": args.policy, "cached_s": round(t_cached, 2)}
    if not args.no_unreduced:
        saved_q = latency.WindowedSketch.quantiles
        latency.WindowedSketch.quantiles = _uncached_quantiles  # type: ignore[method-assign]
        try:
            plain, t_plain = _timed(lambda: run_policy(scn, args.policy))
        finally:
            latency.WindowedSketch.quantiles = saved_q  # type: ignore[method-assign]
        if not np.array_equal(plain.candidate, cached.candidate):
            raise SystemExit("the cached simulation decided differently: not recorded")
        sim |= {"uncached_s": round(t_plain, 2), "speedup": round(t_plain / t_cached, 1)}
    result = {
        "zones": len(zones),
        "requests": args.requests,
        "days": args.days,
        "allowed_pairs": allowed_pairs,
        "lps": rows,
        "simulation": sim,
    }
    lines = [
        f"Scenario: {len(zones)} zones, {args.requests:,} requests over {args.days:g} days, "
        f"default pool (10 models), seed 0; {allowed_pairs:,} eligible (request, candidate) "
        "pairs.",
        "",
        "| LP | reduced s | unreduced s | speedup | CO2 g reduced | relative gap |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['lp']} | {r['reduced_s']:.1f} | {r.get('unreduced_s', float('nan')):.1f} "
            f"| {r.get('speedup', float('nan')):.1f}x | {r['co2_g']:.6f} "
            f"| {r.get('relative_gap', float('nan')):.1e} |"
        )
    lines += [
        "",
        f"Simulation of {args.policy}: {sim['cached_s']:.1f} s with the latency-quantile cache, "
        f"{sim.get('uncached_s', float('nan')):.1f} s without ({sim.get('speedup', float('nan'))}x;"
        " identical decisions).",
        "(A positive relative gap: the unreduced LP stopped short of the optimum the reduced one "
        "found.)",
    ]
    record("hindsight LP and simulation speed", facts, result, "\n".join(lines))


if __name__ == "__main__":
    main()
