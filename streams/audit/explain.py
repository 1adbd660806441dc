"""``gar explain REQUEST_ID``: one decision's full candidate table.

For a decisions.v2 record the table is recomputed from its routing context (the record has only
the chosen candidate's estimates); a v1 record carries it. Each candidate: its estimates, whether
the request's allow/deny lists admit it, whether it meets the latency cap and the accuracy
filter, whether it was in the feasible set, and gar-pd's primal-dual score under the duals the
decision was priced with, ``(1 + lambda) co2 / c_ref - mu acc + nu lat / cap`` (the choice is
the feasible argmin; ties break by model then region name).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from streams.audit.reader import DecisionRow, ReadRange, read_decisions
from streams.config import Settings
from streams.core.catalog import Catalog
from streams.core.replay import duals_of


@dataclass(frozen=True)
class CandidateLine:
    candidate: int
    model: str
    region: str
    co2_g: float | None
    accuracy: float | None
    latency_p95_ms: float | None
    eligible: bool
    latency_ok: bool | None
    feasible: bool
    score: float | None
    chosen: bool


def candidate_table(
    full: dict[str, Any], catalog: Catalog, slo_margin: float = 0.0
) -> list[CandidateLine]:
    """The candidate table of a decision record in the v1 shape (a v1 record, or a v2 record
    expanded by the audit). ``slo_margin``: the policy's, for the latency column."""
    c = full["candidates"]
    co2, acc, lat = c["co2_g"], c["accuracy"], c["latency_ms"]
    feasible = set(c.get("feasible") or [])
    eligible = None if c.get("eligible") is None else set(c["eligible"])
    cap = float(full["latency_cap_ms"])
    before = duals_of(full["duals_before"])
    ref = float(full.get("carbon_ref_g") or 0.0)
    scored = full.get("policy") == "gar-pd" and ref > 0
    chosen = full.get("candidate")
    out = []
    for k, (m, r) in enumerate(catalog.deployments):
        score = None
        if scored and None not in (co2[k], acc[k], lat[k]):
            score = (
                (1.0 + before.lam) * co2[k] / ref - before.mu * acc[k] + before.nu * lat[k] / cap
            )
        out.append(
            CandidateLine(
                k,
                m,
                r,
                co2[k],
                acc[k],
                lat[k],
                eligible is None or k in eligible,
                None if lat[k] is None else lat[k] <= cap * (1.0 - slo_margin),
                k in feasible,
                score,
                k == chosen,
            )
        )
    return out


def find_decisions(
    settings: Settings,
    request_id: str,
    rng: ReadRange,
    idle_ms: int = 1_000,
    progress: bool = True,
) -> list[DecisionRow]:
    """Every record of ``request_id`` in ``rng`` of the decisions topic."""
    rows = read_decisions(settings, rng, idle_ms=idle_ms, progress=progress)
    return [r for r in rows if r.record is not None and r.record.get("request_id") == request_id]


def as_json(
    row: DecisionRow, full: dict[str, Any], lines: list[CandidateLine], findings: list[Any]
) -> dict[str, Any]:
    return {
        "where": row.where,
        "record": row.record,
        "rederived": not findings,
        "findings": [list(f) for f in findings],
        "floor": full.get("floor"),
        "latency_cap_ms": full.get("latency_cap_ms"),
        "budget_g": full.get("budget_g"),
        "carbon_ref_g": full.get("carbon_ref_g"),
        "intensity": full.get("intensity"),
        "candidates": [asdict(line) for line in lines],
    }
