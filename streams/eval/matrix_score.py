"""The matrix's targets, scored from metrics dicts (pure; no data, no solver).

Per (scenario, policy):

1. **Floors.** Per dataset d with n_d requests: target T_d = min(F_d, accuracy-greedy's
   realised accuracy on d), tolerance tol_d = max(0.5 point, sqrt(T_d (1 - T_d) / n_d)) (one
   binomial standard error at the target). Missed when realised_d < T_d - tol_d; shortfall =
   T_d - realised_d in points. Holds when no dataset is missed.
2. **CO2 at equal accuracy.** CO2 / that of oracle-lp with each floor at max(F_d, the
   policy's realised accuracy on d): target <= 1.10, goal <= 1.05, judged on the
   information-consistent reference (both priced with the CO2 expected from what a router can
   know before the answer exists: the model's hindsight mean answer length on the dataset);
   the ratio to the same LP on realised CO2 (which also knows each question's answer length)
   and the plain ratio to oracle-lp at the floors are reported next to it.
3. **Daily windows**, pooled over datasets (the evaluator's ``floor_met_fraction``): met when
   at least 6/7 of the counted windows meet their floor (6 of 7 on a 7-day run, 12 of 14, ...);
   per-dataset windows are reported. Across the matrix the target holds when >= 90% of the
   7-day scenarios meet it.
4. **p95 latency <= the SLO.** Budget violation (g over budget, summed over tenants and
   windows) is reported, not scored (budgets are soft in every preset).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FLOOR_TOLERANCE = 0.005
RATIO_TARGET = 1.10
RATIO_GOAL = 1.05
WINDOWS_FRACTION = 6 / 7
WINDOWS_SHARE_OF_WEEK_RUNS = 0.90
WEEK_DAYS = 7.0


@dataclass(frozen=True)
class FloorCheck:
    dataset: str
    requests: int
    floor: float
    greedy: float
    target: float
    tolerance: float
    realised: float
    missed: bool

    @property
    def shortfall_pt(self) -> float:
        """Points under the target (negative: above it)."""
        return 100.0 * (self.target - self.realised)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "shortfall_pt": self.shortfall_pt}


def floor_tolerance(target: float, requests: int) -> float:
    """max(0.5 point, one binomial standard error of a mean of ``requests`` answers at
    ``target``)."""
    p = min(max(target, 0.0), 1.0)
    se = math.sqrt(p * (1.0 - p) / requests) if requests > 0 else math.inf
    return max(FLOOR_TOLERANCE, se)


def check_floors(
    realised: Mapping[str, float],
    greedy: Mapping[str, float],
    floors: Mapping[str, float],
    requests: Mapping[str, int],
) -> list[FloorCheck]:
    """Target 1 per dataset that has requests and a floor."""
    out: list[FloorCheck] = []
    for d in sorted(realised):
        n = int(requests.get(d, 0))
        if n <= 0 or d not in floors:
            continue
        target = min(floors[d], greedy.get(d, floors[d]))
        tol = floor_tolerance(target, n)
        out.append(
            FloorCheck(
                dataset=d,
                requests=n,
                floor=floors[d],
                greedy=greedy.get(d, math.nan),
                target=target,
                tolerance=tol,
                realised=realised[d],
                missed=realised[d] < target - tol,
            )
        )
    return out


def windows_needed(counted: int) -> int:
    """Windows to meet out of ``counted``: ceil(6/7 x counted)."""
    return math.ceil(WINDOWS_FRACTION * counted - 1e-9)


def score(
    policy: Mapping[str, Any],
    greedy: Mapping[str, Any],
    oracle_lp: Mapping[str, Any],
    equal_accuracy: Mapping[str, Any],
    floors: Mapping[str, float],
    requests_per_dataset: Mapping[str, int],
    slo_ms: float,
    days: float,
) -> dict[str, Any]:
    """Every target for one (scenario, policy) from the metrics of the policy, accuracy-greedy,
    oracle-lp and the equal-accuracy oracle-lp (``runner.equal_accuracy_reference``)."""
    checks = check_floors(
        policy["accuracy_per_dataset"], greedy["accuracy_per_dataset"], floors, requests_per_dataset
    )
    missed = [c for c in checks if c.missed]
    co2 = float(policy["co2_g_per_request"])
    eq_co2 = float(equal_accuracy["co2_g_per_request"])
    lp_co2 = float(oracle_lp["co2_g_per_request"])
    ratio_eq = co2 / eq_co2 if eq_co2 > 0 else math.inf
    ratio_lp = co2 / lp_co2 if lp_co2 > 0 else math.inf
    fair = equal_accuracy.get("information_consistent")
    ratio_fair = float(fair["co2_ratio"]) if fair else ratio_eq
    met, counted = int(policy["floor_windows_met"]), int(policy["floor_windows"])
    p95 = float(policy["latency_p95_ms"])
    return {
        "floors": [c.to_dict() for c in checks],
        "floors_missed": len(missed),
        "worst_shortfall_pt": max((c.shortfall_pt for c in missed), default=0.0),
        "closest_margin_pt": min((-c.shortfall_pt for c in checks), default=math.nan),
        "target1_floors": not missed,
        "co2_g_per_request": co2,
        "co2_g_per_request_equal_accuracy_oracle": eq_co2,
        "co2_g_per_request_oracle_lp": lp_co2,
        "co2_ratio_equal_accuracy": ratio_fair,
        "co2_ratio_equal_accuracy_realised_co2": ratio_eq,
        "co2_ratio_oracle_lp": ratio_lp,
        "equal_accuracy_capped": list(equal_accuracy.get("capped_at_reachable", [])),
        "target2_ratio": ratio_fair <= RATIO_TARGET,
        "goal2_ratio": ratio_fair <= RATIO_GOAL,
        "windows_met": met,
        "windows": counted,
        "windows_needed": windows_needed(counted),
        "windows_per_dataset": dict(policy.get("floor_windows_per_dataset", {})),
        "target3_windows": met >= windows_needed(counted),
        "week_run": abs(days - WEEK_DAYS) < 1e-9,
        "latency_p95_ms": p95,
        "slo_ms": slo_ms,
        "target4_slo": p95 <= slo_ms,
        "budget_violation_g": float(policy["budget_violation_g"]),
        "budget_violation_share": (
            float(policy["budget_violation_g"]) / float(policy["co2_g_total"])
            if policy.get("co2_g_total")
            else 0.0
        ),
    }


def _spread(values: Sequence[float], worst: str) -> dict[str, float | None]:
    if not values:
        return {"median": None, "worst": None}
    return {
        "median": float(statistics.median(values)),
        "worst": float(max(values) if worst == "max" else min(values)),
    }


def aggregate(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Across scenarios (one policy's scored rows): the typical (median) and the worst case
    of each target, and whether each holds everywhere (target 3: on >= 90% of the 7-day
    scenarios, the issue's criterion; ``holds_everywhere`` for all scenarios too)."""
    week = [r for r in rows if r["week_run"]]
    week_met = sum(1 for r in week if r["target3_windows"])
    window_frac = [r["windows_met"] / r["windows"] for r in rows if r["windows"]]
    targets: dict[str, Any] = {
        "target1_floors": {
            "floors_missed": _spread([r["floors_missed"] for r in rows], "max"),
            "worst_shortfall_pt": _spread([r["worst_shortfall_pt"] for r in rows], "max"),
            "scenarios_missing": sum(1 for r in rows if not r["target1_floors"]),
            "holds": all(r["target1_floors"] for r in rows),
        },
        "target2_ratio": {
            "co2_ratio_equal_accuracy": _spread(
                [r["co2_ratio_equal_accuracy"] for r in rows], "max"
            ),
            "co2_ratio_equal_accuracy_realised_co2": _spread(
                [r["co2_ratio_equal_accuracy_realised_co2"] for r in rows], "max"
            ),
            "co2_ratio_oracle_lp": _spread([r["co2_ratio_oracle_lp"] for r in rows], "max"),
            "scenarios_over_target": sum(1 for r in rows if not r["target2_ratio"]),
            "holds": all(r["target2_ratio"] for r in rows),
            "goal_holds": all(r["goal2_ratio"] for r in rows),
        },
        "target3_windows": {
            "windows_met_fraction": _spread(window_frac, "min"),
            "week_runs": len(week),
            "week_runs_met": week_met,
            "holds_everywhere": all(r["target3_windows"] for r in rows),
            "holds": (not week) or week_met >= WINDOWS_SHARE_OF_WEEK_RUNS * len(week) - 1e-9,
        },
        "target4_slo": {
            "p95_over_slo": _spread([r["latency_p95_ms"] / r["slo_ms"] for r in rows], "max"),
            "budget_violation_g": _spread([r["budget_violation_g"] for r in rows], "max"),
            "holds": all(r["target4_slo"] for r in rows),
        },
    }
    targets["all_hold"] = all(t["holds"] for t in targets.values() if isinstance(t, dict))
    return {"scenarios": len(rows), **targets}
