"""decisions.v2: a decision records its inputs by reference.

A v1 record carried every candidate's CO2, accuracy and latency (~2.8 KB of its ~3.6 KB); each
of those is a pure function of the routing context in force and of the request's own fields.
A v2 record carries the request's fields, the digest of its context (logged once per context on
the ``contexts`` topic, see ``context_inputs``), what an SRE reads (the choice and its
estimates, the duals before and after, the budget window, the sequence number) and everything
else a decision's rule depends on that the context does not hold: the feedback gar-pd's mu step
counted and gar-target's running deficit. ``streams.core.replay_v2`` re-derives it.

Field order and meaning: docs/topics.md ("decisions.v2"). Duals are ``[lambda, mu, nu]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from streams.core.context import RoutingContext
from streams.core.decision import Decision, DecisionContext

SCHEMA_VERSION_V2 = 2


def eligible_hex(row: Any) -> str:
    """An eligibility row as a hex integer: bit k set = candidate k (catalog order) eligible."""
    packed = np.packbits(np.asarray(row, dtype=bool), bitorder="little")
    return format(int.from_bytes(packed.tobytes(), "little"), "x")


def eligible_from_hex(text: str, n_candidates: int) -> list[int]:
    """The candidate indexes of an ``eligible_hex`` value (raises ``ValueError``)."""
    mask = int(text, 16)
    if mask < 0 or mask >> n_candidates:
        raise ValueError(f"eligible mask {text!r} names candidates beyond {n_candidates}")
    return [k for k in range(n_candidates) if (mask >> k) & 1]


def reading_offset(ctx: RoutingContext, pos: int | None, region: int) -> int | None:
    """Source offset of the reading ``region`` was priced with: its latest (``pos`` None) or
    its retained reading ``pos`` (the one in force at the request's event time; -1: none at
    or before it). None: no reading (the stale fallback)."""
    if pos is None:
        rd = ctx.region_readings[region]
    else:
        rd = ctx.region_history[region][pos] if pos >= 0 else None
    return None if rd is None else rd.source_offset


class V2Rows:
    """What the records of one batch share, converted once per batch (``DecisionContext``)."""

    __slots__ = (
        "cand_region",
        "ctx",
        "deployments",
        "eligible",
        "n_regions",
        "offsets",
        "policy_version",
        "reading_idx",
        "stale",
    )

    def __init__(self, shared: DecisionContext) -> None:
        ctx, est = shared.ctx, shared.est
        cat = ctx.catalog
        self.deployments = cat.deployments
        self.cand_region: list[int] = cat.cand_region_idx.tolist()
        self.policy_version = ctx.config.version
        self.n_regions: int = est.intensity_stale.shape[1]
        self.stale: list[bool] = est.intensity_stale.ravel().tolist()
        self.ctx = ctx
        # The source offset of each region's latest reading (None: no reading), and, when some
        # request was priced with an older one (a replay, a feed ahead), the reading in force
        # per (request, region), flat like ``stale``.
        self.offsets: list[int | None] = [
            reading_offset(ctx, None, r) for r in range(len(ctx.region_readings))
        ]
        idx = est.intensity_reading
        self.reading_idx: list[int] | None = None if idx is None else idx.ravel().tolist()
        # Requests restricted by allow/deny lists: their eligible set (a few distinct per batch).
        self.eligible: list[str | None] = [None] * est.n
        restricted = np.flatnonzero(~np.all(est.eligible, axis=1)).tolist()
        if restricted:
            packed = np.packbits(est.eligible[restricted], axis=1, bitorder="little")
            seen: dict[bytes, str] = {}
            for i, row in zip(restricted, packed, strict=True):
                raw = row.tobytes()
                text = seen.get(raw)
                if text is None:
                    text = seen[raw] = format(int.from_bytes(raw, "little"), "x")
                self.eligible[i] = text


# Long on purpose, like Decision.to_record: one flat pass per routed request (hot path).
def record_v2(dec: Decision, rows: V2Rows, context: str) -> dict[str, Any]:
    """The decisions.v2 record of ``dec`` without the shell's fields (the request's offset and
    the record's MAC). ``context``: the digest of the context record it was decided in."""
    (
        sh,
        i,
        k,
        reason,
        lam_b,
        mu_b,
        nu_b,
        lam_a,
        mu_a,
        nu_a,
        _budget,
        _left,
        spend0,
        count0,
        in_win,
        seq,
        fb,
        mu_scope,
        mu_seq,
        deficit,
    ) = dec
    est = sh.est
    req = est.requests[i]
    m, r = rows.deployments[k]
    ri = rows.cand_region[k]
    rec: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION_V2,
        "request_id": req.request_id,
        "tenant": req.tenant,
        "dataset": req.dataset,
        "ts_ms": req.ts_ms,
        "client_region": req.client_region,
        "input_tokens": req.input_tokens,
        "output_tokens_est": req.output_tokens_est,
    }
    # The request's own overrides, only when it sent them (the effective floor and cap are
    # the context's unless overridden).
    if req.floor is not None:
        rec["floor"] = req.floor
    if req.latency_cap_ms is not None:
        rec["latency_cap_ms"] = req.latency_cap_ms
    elig = rows.eligible[i]
    if elig is not None:
        rec["eligible"] = elig
    rec["policy"] = sh.policy
    rec["policy_version"] = rows.policy_version
    rec["context"] = context
    rec["model"] = m
    rec["region"] = r
    rec["reason"] = reason
    rec["co2_g"] = est.co2_g.item(i, k)
    rec["accuracy_est"] = est.accuracy.item(i, k)
    rec["latency_p95_ms_est"] = est.latency_ms.item(i, k)
    rec["duals_before"] = [lam_b, mu_b, nu_b]
    rec["duals_after"] = [lam_a, mu_a, nu_a]
    if mu_scope is not None:  # pooled accuracy duals: whose mu, and its decision count
        rec["mu_scope"] = mu_scope
        rec["mu_seq"] = mu_seq
    if fb:
        rec["feedback"] = fb
    if deficit is not None:
        rec["deficit"] = [deficit[0], deficit[1]]
    rec["window_spend_g_before"] = spend0
    rec["window_count_before"] = count0
    rec["in_window"] = in_win
    rec["tenant_seq"] = seq
    j = i * rows.n_regions + ri
    pos = rows.reading_idx
    rec["intensity_offset"] = (
        rows.offsets[ri] if pos is None else reading_offset(rows.ctx, pos[j], ri)
    )
    rec["intensity_stale"] = rows.stale[j]
    return rec
