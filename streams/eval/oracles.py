"""Feed the core's hindsight oracles with the world's true outcomes.

* ``oracle-lp``: true CO2 of every (request, candidate) at the request's actual hour, and the
  hindsight mean accuracy of each model on each dataset *over this trace* (what a policy could
  at best learn); floors per dataset over the whole trace; the same tenant budgets.
* ``oracle-perfect``: the same LP with each query's true 0/1 correctness per model.

Allowed pairs: the request's eligible models and, per request, the candidates whose realised
latency is within the SLO (a request with none may use all). Metrics of an oracle are
expectations under its fractional assignment ``x``; latency and decision counts use its
integral reading ``argmax x``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from streams.core.oracle import OracleResult, oracle_lp, oracle_perfect
from streams.eval.scenario_types import Scenario
from streams.eval.world import Outcomes

FloatArray = npt.NDArray[np.float64]


@dataclass
class OracleRun:
    name: str
    result: OracleResult
    co2_g: FloatArray  # per request, expected under x
    energy_j: FloatArray
    correct: FloatArray  # per request, expected under x
    latency_ms: FloatArray  # of argmax x
    choice: npt.NDArray[np.int64]


def hindsight_accuracy(scn: Scenario) -> FloatArray:
    """(N, K): mean correctness of the candidate's model on the request's dataset over the trace."""
    t, cat = scn.trace, scn.catalog
    corr = t.correct.astype(np.float64)
    acc = np.zeros((len(t.dataset_names), len(cat.models)))
    for d in range(len(t.dataset_names)):
        rows = t.dataset_idx == d
        if rows.any():
            block = corr[rows]
            known = block >= 0
            acc[d] = np.where(known.any(0), (block * known).sum(0) / np.maximum(known.sum(0), 1), 0)
    return acc[t.dataset_idx][:, cat.cand_model_idx]


def allowed_pairs(scn: Scenario, everything: Outcomes) -> npt.NDArray[np.bool_]:
    """(N, K): eligible candidates whose realised latency is within the SLO (a request with
    none may use every eligible one)."""
    t, cat = scn.trace, scn.catalog
    eligible = t.correct[:, cat.cand_model_idx] >= 0
    allowed = eligible & (everything.latency_ms <= scn.settings.slo_ms)
    allowed |= eligible & ~allowed.any(axis=1, keepdims=True)
    return allowed


def reachable_accuracy(scn: Scenario, everything: Outcomes) -> dict[str, float]:
    """Per dataset, the highest expected accuracy oracle-lp can reach: each request on its
    most accurate allowed candidate (hindsight accuracies)."""
    t = scn.trace
    acc = np.where(allowed_pairs(scn, everything), hindsight_accuracy(scn), -np.inf).max(axis=1)
    return {
        d: float(acc[t.dataset_idx == i].mean())
        for i, d in enumerate(t.dataset_names)
        if (t.dataset_idx == i).any()
    }


@dataclass
class AccuracyTarget:
    """oracle-lp's floors for matching a policy's realised accuracy (``at_accuracy``)."""

    floors: dict[str, float]
    """max(floor, the policy's realised accuracy), capped at what the LP can reach."""
    capped: tuple[str, ...]
    """Datasets where that maximum was above the LP's reach (floor = the reach)."""


REACH_SLACK = 1e-9
"""A floor at exactly the reachable accuracy is held this much under it (LP round-off)."""


def at_accuracy(
    scn: Scenario,
    everything: Outcomes,
    realised: Mapping[str, float],
    co2_g: FloatArray | None = None,
) -> tuple[OracleRun, AccuracyTarget]:
    """oracle-lp on the same trace, allowed pairs and budgets with each dataset's floor raised
    to ``realised[d]`` (an online policy's realised accuracy on d) when that is higher: the
    least CO2 at which the policy's accuracies were reachable in hindsight. A floor above the
    LP's reach (the floor itself, or a realised accuracy that beat the expected ones by luck)
    is capped at the reach and reported. ``co2_g``: the (N, K) CO2 the LP minimises and
    reports instead of the realised one (e.g. ``World.expected_co2_g``)."""
    reach = reachable_accuracy(scn, everything)
    floors: dict[str, float] = {}
    capped: list[str] = []
    for d, top in reach.items():  # the datasets with requests
        want = max(scn.floors.get(d, 0.0), realised.get(d, 0.0))
        if want > top - REACH_SLACK:
            want = top - REACH_SLACK
            capped.append(d)
        floors[d] = want
    basis = everything if co2_g is None else replace(everything, co2_g=co2_g)
    run = run_oracle("oracle-lp", replace(scn, floors=floors), basis)
    return run, AccuracyTarget(floors, tuple(capped))


def run_oracle(
    name: str,
    scn: Scenario,
    everything: Outcomes,
    window_floors: bool = False,
    pool_margin: float = 0.0,
    group_cap: FloatArray | None = None,
    reduce: bool = True,
) -> OracleRun:
    """``window_floors``: also hold each of the evaluator's floor windows (event-time windows of
    ``floor_window_ms`` from the first request, pooled over datasets, as ``floor_met_fraction``
    counts them) to its request-weighted floor (+ ``pool_margin``), in expectation.
    ``reduce=False`` solves over every allowed pair (benchmarks: the reduction is exact)."""
    t = scn.trace
    allowed = allowed_pairs(scn, everything)
    floors = np.array([scn.floors.get(d, 0.0) for d in t.dataset_names])
    if name == "oracle-perfect":
        accuracy = np.clip(everything.correct, 0, 1).astype(np.float64)
    else:
        accuracy = hindsight_accuracy(scn)
    budget_kw: dict[str, object] = {}
    if scn.budgets_g:
        budget_kw = {
            "tenant": t.tenant_idx,
            "ts_ms": t.ts_ms,
            "budgets_g": np.array([scn.budgets_g.get(n, np.inf) for n in t.tenants]),
            "window_ms": scn.settings.budget_window_ms,
        }
    if window_floors:
        budget_kw["pool_group"] = (t.ts_ms - t.ts_ms.min()) // scn.settings.floor_window_ms
        budget_kw["pool_floor"] = floors[t.dataset_idx] + pool_margin
    if group_cap is not None:
        budget_kw["group_cap"] = group_cap
    solve = oracle_perfect if name == "oracle-perfect" else oracle_lp
    result = solve(
        everything.co2_g,
        accuracy,
        allowed,
        t.dataset_idx,
        floors,
        reduce=reduce,
        **budget_kw,  # type: ignore[arg-type]
    )
    x = result.x
    rows = np.arange(len(t))
    real = np.clip(everything.correct, 0, 1).astype(np.float64)
    return OracleRun(
        name=name,
        result=result,
        co2_g=(x * everything.co2_g).sum(axis=1),
        energy_j=(x * everything.energy_j).sum(axis=1),
        correct=(x * real).sum(axis=1),
        latency_ms=everything.latency_ms[rows, result.choice],
        choice=result.choice,
    )
