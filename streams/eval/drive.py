"""Drive the real streaming system with the evaluation trace and check its decisions.

The lead wires the Kafka side; this module is the pure part:

* :func:`trace_events` — the time-ordered events to publish: every hourly intensity reading
  (topic ``carbon-intensity``) before the requests of its hour (topic ``requests``);
* :func:`completion_for` — the completion the serving fleet would report for a request routed
  to (model, region), from the trace's ground truth (for ``gar fleet`` / the load generator);
* :func:`offline_records` — the decision records of the offline run of a policy on the same
  trace (with ``feedback=False`` both sides see catalog priors only, which makes the comparison
  exact even when the fleet's completions arrive at different times);
* :func:`compare_decisions` — match real decision records with the offline ones by request id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from streams.core import Completion, IntensityReading, Request
from streams.eval.runner import run_policy
from streams.eval.scenario import Scenario
from streams.eval.simulate import intensity_readings

Event = tuple[Literal["carbon-intensity", "requests"], IntensityReading | Request]


def trace_events(scn: Scenario) -> Iterator[Event]:
    """Intensity readings and requests in event-time order (a reading precedes the requests
    of its hour, so a worker prices them with the same reading as the offline run)."""
    t = scn.trace
    zones = {r.zone: scn.zones[r.zone] for r in scn.catalog.regions}
    readings = intensity_readings(zones, int(t.ts_ms[0]), int(t.ts_ms[-1]))
    j = 0
    for req in t.requests:
        while j < len(readings) and readings[j].ts_ms <= req.ts_ms:
            yield "carbon-intensity", readings[j]
            j += 1
        yield "requests", req


def completion_for(scn: Scenario, request_id: str, model: str, region: str) -> Completion:
    """What the fleet reports after serving ``request_id`` on (model, region)."""
    i = scn.trace.index_of(request_id)
    k = scn.catalog.candidate_index(model, region)
    o = scn.world.outcomes(np.array([i]), np.array([k]))
    req = scn.trace.requests[i]
    return Completion(
        request_id=req.request_id,
        tenant=req.tenant,
        model=model,
        region=region,
        dataset=req.dataset,
        ts_ms=int(req.ts_ms + o.serving_ms[0]),
        latency_ms=float(o.serving_ms[0]),
        input_tokens=req.input_tokens,
        output_tokens=int(o.output_tokens[0]),
        energy_j=float(o.energy_j[0]),
        correct=bool(o.correct[0] == 1),
    )


def offline_records(scn: Scenario, policy: str, *, feedback: bool = False) -> list[dict[str, Any]]:
    return run_policy(scn, policy, keep_records=True, feedback=feedback).records


@dataclass
class Comparison:
    n_offline: int
    n_online: int
    matched: int
    agree: int
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    missing_online: list[str] = field(default_factory=list)
    unexpected_online: list[str] = field(default_factory=list)
    duplicate_online: dict[str, int] = field(default_factory=dict)

    @property
    def agree_fraction(self) -> float:
        return self.agree / self.matched if self.matched else 0.0

    @property
    def identical(self) -> bool:
        return (
            self.agree == self.matched == self.n_offline
            and not self.unexpected_online
            and not self.duplicate_online
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_offline": self.n_offline,
            "n_online": self.n_online,
            "matched": self.matched,
            "agree": self.agree,
            "agree_fraction": self.agree_fraction,
            "identical": self.identical,
            "mismatches": self.mismatches,
            "missing_online": self.missing_online,
            "unexpected_online": self.unexpected_online,
            "duplicate_online": self.duplicate_online,
        }


def compare_decisions(
    offline: Iterable[Mapping[str, Any]],
    online: Iterable[Mapping[str, Any]],
    *,
    max_listed: int = 20,
) -> Comparison:
    """Compare decision records by request id: same (model, region) = agree.

    Re-delivered online records (at-least-once) are counted in ``duplicate_online``; a
    duplicate that disagrees with its first copy is a mismatch too.
    """
    off = {str(r["request_id"]): r for r in offline}
    counts = Counter(str(r["request_id"]) for r in online)
    first: dict[str, Mapping[str, Any]] = {}
    mismatches: list[dict[str, Any]] = []
    agree = 0
    for rec in online:
        rid = str(rec["request_id"])
        if rid in first:
            if (rec["model"], rec["region"]) != (first[rid]["model"], first[rid]["region"]):
                mismatches.append({"request_id": rid, "duplicate_disagrees": True})
            continue
        first[rid] = rec
        ref = off.get(rid)
        if ref is None:
            continue
        if (rec["model"], rec["region"]) == (ref["model"], ref["region"]):
            agree += 1
        elif len(mismatches) < max_listed:
            mismatches.append(
                {
                    "request_id": rid,
                    "offline": f"{ref['model']}@{ref['region']}",
                    "online": f"{rec['model']}@{rec['region']}",
                    "offline_duals_before": ref.get("duals_before"),
                    "online_duals_before": rec.get("duals_before"),
                }
            )
    matched = sum(1 for rid in first if rid in off)
    return Comparison(
        n_offline=len(off),
        n_online=sum(counts.values()),
        matched=matched,
        agree=agree,
        mismatches=mismatches,
        missing_online=[rid for rid in off if rid not in first][:max_listed],
        unexpected_online=[rid for rid in first if rid not in off][:max_listed],
        duplicate_online={rid: n for rid, n in counts.items() if n > 1},
    )
