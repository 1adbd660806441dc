"""Re-derive a range of decision records of either version.

* decisions.v1 records carry every candidate's estimates: each is re-derived from itself
  (``streams.core.replay.rederive_record``) under the config of its ``policy_version``
  (``Rederiver``).
* decisions.v2 records reference their routing context: they are grouped by (context, policy),
  the context is rebuilt from its record on the contexts topic (``ContextIndex``) and the group
  is re-derived bit for bit at once (``streams.core.replay_v2``). A missing or unusable context
  is a finding at each decision that references it. Each re-derived decision is also expanded
  into the v1 shape (every candidate's estimates, the effective floor and cap, the budget, the
  intensity used), so the summary, the observed outcomes, the counterfactual, the CSV and
  ``gar explain`` read both versions alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from streams.audit.contexts import ContextIndex, read_contexts
from streams.audit.reader import DecisionRow
from streams.audit.rederive import Rederiver, _split
from streams.audit.report import Difference
from streams.config import Settings
from streams.core.catalog import Catalog
from streams.core.decision import Decision
from streams.core.replay_v2 import rederive_v2

# decisions.v2 fields that replace the re-derived record's (the record is what was logged;
# the re-derived values equal them whenever the decision re-derives).
RECORDED_V2 = (
    "request_id",
    "tenant",
    "dataset",
    "ts_ms",
    "client_region",
    "input_tokens",
    "output_tokens_est",
    "policy",
    "policy_version",
    "model",
    "region",
    "reason",
    "co2_g",
    "accuracy_est",
    "latency_p95_ms_est",
    "window_spend_g_before",
    "window_count_before",
    "in_window",
    "tenant_seq",
    "intensity_stale",
    "mu_scope",
    "mu_seq",
    "feedback",
    "deficit",
    "context",
    "mac",
)


@dataclass
class RowsRederived:
    diffs: list[list[Difference] | None]
    """Per row: its findings ([] when it re-derives); None when the row has no record."""
    decisions: dict[int, Decision] = field(default_factory=dict)
    """Row index -> the re-derived decision of a v2 record."""
    contexts_used: int = 0


def full_record(
    row: DecisionRow, decision: Decision, requests_topic: str, candidates: bool = True
) -> dict[str, Any]:
    """A v2 decision in the v1 shape: the re-derived ``Decision.to_record()`` with the logged
    fields over it (accuracy_est is the scoring accuracy, as v2 records it). Without
    ``candidates``, only what the summary and the outcomes read (no per-candidate lists: a
    tenth of the cost)."""
    rec = row.record or {}
    full = decision.to_record() if candidates else _without_candidates(decision)
    full.update({k: rec[k] for k in RECORDED_V2 if k in rec})
    full["schema_version"] = rec.get("schema_version")
    offset = rec.get("request_offset")
    full["request_source"] = {
        "topic": requests_topic,
        "partition": row.partition,
        "offset": offset if isinstance(offset, int) else -1,
    }
    return full


def _without_candidates(d: Decision) -> dict[str, Any]:
    """The v1 fields a decision takes from its context, without the candidate table."""
    ctx, est, i, k = d.shared.ctx, d.shared.est, d.row, d.candidate
    ri = int(ctx.catalog.cand_region_idx[k])
    age = est.intensity_age_ms.item(i, ri)
    stale = bool(est.intensity_stale[i, ri])
    return {
        "candidate": k,
        "mode": ctx.config.mode,
        "catalog_version": ctx.catalog.version,
        "estimator_seq": ctx.snapshot.seq,
        "floor": est.floor.item(i),
        "latency_cap_ms": est.latency_cap_ms.item(i),
        "carbon_ref_g": ctx.carbon_ref_g,
        "budget_g": d.budget_g,
        "duals_before": d.duals_before.to_dict(),
        "duals_after": d.duals_after.to_dict(),
        "intensity": {
            "zone": ctx.catalog.regions[ri].zone,
            "intensity_g_per_kwh": est.intensity_g_per_kwh.item(i, ri),
            "age_ms": None if age < 0 else age,
            "stale": stale,
        },
    }


def rederive_rows(
    rows: list[DecisionRow],
    v1: Rederiver | None,
    contexts: ContextIndex | None,
    on_progress: Callable[[int], None] | None = None,
) -> RowsRederived:
    out = RowsRederived([None] * len(rows))
    groups: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        rec = row.record
        if rec is None:
            continue
        if rec.get("schema_version") == 2:
            groups.setdefault((str(rec.get("context")), str(rec.get("policy"))), []).append(i)
            continue
        if v1 is None:
            continue
        try:
            out.diffs[i] = v1(rec)
        except Exception as exc:  # a record the core cannot even read is a finding
            out.diffs[i] = [("rederive_error", None, f"{type(exc).__name__}: {exc}")]
        if on_progress is not None:
            on_progress(1)
    for (digest, policy), idx in groups.items():
        _group(out, rows, idx, digest, policy, contexts)
        if on_progress is not None:
            on_progress(len(idx))
    return out


def _group(
    out: RowsRederived,
    rows: list[DecisionRow],
    idx: list[int],
    digest: str,
    policy: str,
    contexts: ContextIndex | None,
) -> None:
    try:
        if contexts is None:
            raise LookupError("the contexts topic was not read")
        ctx = contexts.context(digest)
    except LookupError as e:
        for i in idx:
            out.diffs[i] = [("context", digest, str(e))]
        return
    out.contexts_used += 1
    named = contexts.policy_of(digest)
    records = [rows[i].record or {} for i in idx]
    for i, res in zip(idx, rederive_v2(ctx, policy, records), strict=True):
        found = [_split(m) for m in res.mismatches]
        if named is not None and named != policy:
            found.append(("policy", policy, f"the context's policy is {named}"))
        out.diffs[i] = found
        if res.decision is not None:
            out.decisions[i] = res.decision


def expand_rows(
    settings: Settings, rows: list[DecisionRow], catalog: Catalog, idle_ms: int = 1_000
) -> list[DecisionRow]:
    """``rows`` with every v2 record re-derived from its context and expanded to the v1 shape
    (for reports and backfills that read every candidate's estimates); v1 rows, and v2 rows
    whose context cannot be rebuilt, as they are."""
    if not any(r.record is not None and r.record.get("schema_version") == 2 for r in rows):
        return rows
    contexts = ContextIndex.from_rows(catalog, read_contexts(settings, rows, idle_ms))
    done = rederive_rows(rows, None, contexts)
    requests_topic = settings.topics.name(settings.topics.requests)
    return [
        replace(row, record=full_record(row, done.decisions[i], requests_topic))
        if i in done.decisions
        else row
        for i, row in enumerate(rows)
    ]
