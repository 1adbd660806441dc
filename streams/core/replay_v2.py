"""Re-derive decisions.v2 records bit for bit (pure).

For the records decided in one routing context (rebuilt from its ``ContextInputs``):

1. each record's request is rebuilt from its fields (an ``eligible`` mask becomes the allow
   lists that give the same eligibility: eligibility is model-allowed AND region-allowed);
2. ``RoutingContext.estimate`` prices them all at once, the function the router priced them
   with (row by row elementwise, so a row does not depend on its batch): the chosen candidate's
   CO2, accuracy and latency, the intensity reading and its staleness must equal the record's
   exactly;
3. the policy decides every record again from the state the record says it was decided in
   (duals before, budget window, sequence number, the feedback its mu step counted, gar-target's
   deficit): the choice, the reason and the duals after must equal the record's exactly.

Step 3 decides each record as a tenant of its own (a per-record name, its tenant's budget under
that name), so one batch call re-decides a whole context's records, each from its own recorded
state: a broken chain shows up in the chain check, not as a cascade of mismatches. Records
priced with a scope's pooled mu share the scope's state, so those go in calls of one scope with
at most one record per dataset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from streams.core.context import RoutingContext
from streams.core.decision import Decision
from streams.core.errors import CoreError
from streams.core.inputs import Request
from streams.core.policies import find_policy
from streams.core.record_v2 import eligible_from_hex, eligible_hex, reading_offset
from streams.core.tenant import SCOPE_BOOK, TenantState


@dataclass(frozen=True, slots=True)
class V2Result:
    mismatches: tuple[str, ...]
    """``"field: recorded != rederived"`` (or ``"field: why"``), empty when re-derived."""
    decision: Decision | None = None
    """The re-derived decision (its ``to_record()`` is the full candidate table)."""

    @property
    def ok(self) -> bool:
        return not self.mismatches


AllowLists = dict[str, tuple[tuple[str, ...], tuple[str, ...]]]


def request_of(
    rec: Mapping[str, Any],
    n_candidates: int,
    deployments: Sequence[Any],
    masks: AllowLists | None = None,
) -> Request:
    """The request a v2 record decided (raises ``CoreError``, ``KeyError``, ``ValueError``).
    ``masks``: a cache of eligible mask -> allow lists (a batch repeats a few)."""
    allow_models = allow_regions = None
    elig = rec.get("eligible")
    if elig is not None:
        hit = None if masks is None else masks.get(elig)
        if hit is None:
            ks = eligible_from_hex(str(elig), n_candidates)
            hit = (
                tuple(dict.fromkeys(deployments[k][0] for k in ks)),
                tuple(dict.fromkeys(deployments[k][1] for k in ks)),
            )
            if masks is not None:
                masks[elig] = hit
        allow_models, allow_regions = hit
    return Request(
        request_id=rec["request_id"],
        tenant=rec["tenant"],
        dataset=rec["dataset"],
        input_tokens=rec["input_tokens"],
        output_tokens_est=rec["output_tokens_est"],
        client_region=rec["client_region"],
        ts_ms=rec["ts_ms"],
        floor=rec.get("floor"),
        latency_cap_ms=rec.get("latency_cap_ms"),
        allow_models=allow_models,
        allow_regions=allow_regions,
    )


def _same(a: Any, b: Any) -> bool:
    """Bit-exact for the values a record holds (a number equals its float; NaN equals NaN)."""
    if isinstance(a, int | float) and isinstance(b, int | float):
        if isinstance(a, bool) or isinstance(b, bool):
            return a is b
        return float(a) == float(b) or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and bool(a == b)


def _diff(out: list[str], name: str, recorded: Any, fresh: Any) -> None:
    if isinstance(recorded, list) and isinstance(fresh, list | tuple):
        if len(recorded) != len(fresh) or not all(
            _same(a, b) for a, b in zip(recorded, fresh, strict=False)
        ):
            out.append(f"{name}: {recorded!r} != {list(fresh)!r}")
    elif not _same(recorded, fresh):
        out.append(f"{name}: {recorded!r} != {fresh!r}")


def _states(
    rec: Mapping[str, Any], name: str, ds: str, bucket_ms: int, window_ms: int
) -> TenantState:
    """The tenant as the record says it was (under ``name``): its window holds the recorded
    spend and count and places the request inside (or, when it was too late, outside) it
    exactly as recorded. ``ds``: the catalog's name of the request's dataset (unknown ones
    share the ``*`` row)."""
    ts = int(rec["ts_ms"])
    wm = ts if rec["in_window"] else ts + window_ms
    lam, mu, nu = (float(x) for x in rec["duals_before"])
    count = int(rec["window_count_before"])
    spend = float(rec["window_spend_g_before"])
    fb = rec.get("feedback")
    deficit = rec.get("deficit")
    return TenantState(
        tenant=name,
        lam=lam,
        mu={ds: mu},
        nu=nu,
        buckets=((wm // bucket_ms, spend, count),) if count else (),
        watermark_ms=wm,
        seq=int(rec["tenant_seq"]) - 1,
        window_spend_g=spend if count else 0.0,
        window_count=count,
        deficit={} if deficit is None else {ds: float(deficit[0])},
        surprise={ds: float(fb)} if fb else {},
    )


def _check_estimates(
    ctx: RoutingContext, rec: Mapping[str, Any], est: Any, i: int, k: int, out: list[str]
) -> None:
    """The chosen candidate's estimates and the intensity reading, recomputed."""
    ri = int(ctx.catalog.cand_region_idx[k])
    pos = None if est.intensity_reading is None else int(est.intensity_reading[i, ri])
    row = est.eligible[i]
    fresh = (
        est.co2_g.item(i, k),
        est.accuracy.item(i, k),
        est.latency_ms.item(i, k),
        reading_offset(ctx, pos, ri),
        bool(est.intensity_stale[i, ri]),
        ctx.config.version,
        None if row.all() else eligible_hex(row),
    )
    recorded = tuple(rec.get(name) for name in ESTIMATE_FIELDS)
    if recorded == fresh:  # the common case, compared at once (exact float equality)
        return
    for name, a, b in zip(ESTIMATE_FIELDS, recorded, fresh, strict=True):
        _diff(out, name, a, b)


ESTIMATE_FIELDS = (
    "co2_g",
    "accuracy_est",
    "latency_p95_ms_est",
    "intensity_offset",
    "intensity_stale",
    "policy_version",
    "eligible",
)
DECISION_FIELDS = (
    "reason",
    "duals_before",
    "duals_after",
    "feedback",
    "deficit",
    "tenant_seq",
    "mu_scope",
    "in_window",
    "window_spend_g_before",
    "window_count_before",
)


def _check_decision(rec: Mapping[str, Any], d: Decision, k: int, out: list[str]) -> None:
    if d.candidate != k:
        out.append(f"candidate: {rec.get('model')}@{rec.get('region')} != {d.model}@{d.region}")
    fresh = (
        d.reason,
        [d.lam_before, d.mu_before, d.nu_before],
        [d.lam_after, d.mu_after, d.nu_after],
        d.feedback,
        None if d.deficit is None else list(d.deficit),
        d.tenant_seq,
        d.mu_scope,
        d.in_window,
        d.window_spend_g_before,
        d.window_count_before,
    )
    recorded = tuple(
        float(rec.get(name) or 0.0) if name == "feedback" else rec.get(name)
        for name in DECISION_FIELDS
    )
    if recorded == fresh:
        return
    for name, a, b in zip(DECISION_FIELDS, recorded, fresh, strict=True):
        _diff(out, name, a, b)


def _waves(
    recs: Sequence[Mapping[str, Any]], rows: Sequence[int], ds_of: Mapping[int, str]
) -> list[tuple[str | None, list[int]]]:
    """(scope, rows) per call. Every record is decided as a tenant of its own (``_pseudo``),
    so records priced with their tenant's own duals share one call; a record priced with a
    scope's pooled mu (``mu_scope``) shares its call with that scope's records only, at most
    one per dataset (the scope's state is one per call). Rows keep their order."""
    own: list[int] = []
    scopes: dict[str, list[int]] = {}
    for j in rows:
        scope = recs[j].get("mu_scope")
        if scope is None:
            own.append(j)
        else:
            scopes.setdefault(str(scope), []).append(j)
    out: list[tuple[str | None, list[int]]] = [(None, own)] if own else []
    for scope, members in scopes.items():
        seen: dict[str, int] = {}
        waves: list[list[int]] = []
        for j in members:
            w = seen.get(ds_of[j], 0)
            seen[ds_of[j]] = w + 1
            while len(waves) <= w:
                waves.append([])
            waves[w].append(j)
        out.extend((scope, wave) for wave in waves)
    return out


_REQUEST_SLOTS = tuple(f.name for f in fields(Request))


def _pseudo(req: Request, name: str) -> Request:
    """``req`` decided as tenant ``name`` (its estimates, Thompson draws included, are already
    computed with its real tenant; the policy keys state and budget by this name). Copied slot
    by slot: ``req`` was validated when it was built."""
    out = object.__new__(Request)
    for slot in _REQUEST_SLOTS:
        object.__setattr__(out, slot, getattr(req, slot))
    object.__setattr__(out, "tenant", name)
    return out


def rederive_v2(
    ctx: RoutingContext, policy_name: str, records: Sequence[Mapping[str, Any]]
) -> list[V2Result]:
    """Re-derive ``records`` (v2, all decided by ``policy_name`` in ``ctx``), one result each.
    A tenant with a policy override was priced and decided under its own config
    (``RoutingContext.for_tenant``), so its records are re-derived under it too."""
    overridden = ctx.config.tenant_overrides
    groups: dict[str | None, list[int]] = {}
    for j, rec in enumerate(records):
        tenant = rec.get("tenant")
        groups.setdefault(tenant if tenant in overridden else None, []).append(j)
    if list(groups) in ([], [None]):
        return _rederive_under(ctx, policy_name, records)
    out: list[V2Result | None] = [None] * len(records)
    for tenant, idx in groups.items():
        sub = ctx if tenant is None else ctx.for_tenant(str(tenant))
        results = _rederive_under(sub, policy_name, [records[j] for j in idx])
        for j, result in zip(idx, results, strict=True):
            out[j] = result
    return [r for r in out if r is not None]


# Long on purpose: one pass that keeps each record's findings together through the three
# steps (rebuild the request, price, decide) and their error paths.
def _rederive_under(
    ctx: RoutingContext, policy_name: str, records: Sequence[Mapping[str, Any]]
) -> list[V2Result]:
    """``rederive_v2`` of records all decided under ``ctx.config`` itself."""
    cat = ctx.catalog
    cfg = ctx.config
    found: list[list[str]] = [[] for _ in records]
    fresh: list[Decision | None] = [None] * len(records)
    policy = find_policy(policy_name)
    if policy is None:
        return [V2Result((f"policy: {policy_name!r} unknown to this build",))] * len(records)
    reqs: list[Request] = []
    rows: list[int] = []
    ks: list[int] = []
    masks: AllowLists = {}
    for j, rec in enumerate(records):
        try:
            req = request_of(rec, cat.n_candidates, cat.deployments, masks)
            k = cat.candidate_index(str(rec["model"]), str(rec["region"]))
        except (CoreError, KeyError, TypeError, ValueError) as e:
            found[j].append(f"record: unusable ({e!r})")
            continue
        why = ctx.validate(req)
        if why is not None:
            found[j].append(f"request: {why}")
            continue
        reqs.append(req)
        rows.append(j)
        ks.append(k)
    est = ctx.estimate(reqs)
    for i, (j, k) in enumerate(zip(rows, ks, strict=True)):
        rec = records[j]
        _check_estimates(ctx, rec, est, i, k, found[j])
    row_of = {j: i for i, j in enumerate(rows)}
    k_of = dict(zip(rows, ks, strict=True))
    ds_of = {j: cat.datasets[d] for j, d in zip(rows, est.dataset_idx.tolist(), strict=True)}
    bms, window = cfg.bucket_ms, cfg.budget_window_ms
    budgets = cfg.budgets_g
    for scope, wave in _waves(records, rows, ds_of):
        try:
            sub = est.take([row_of[j] for j in wave]) if len(wave) != len(rows) else est
            states: dict[str, TenantState] = {}
            pool_mu: dict[str, float] = {}
            pool_sur: dict[str, float] = {}
            pseudo: list[Request] = []
            own_budgets: dict[str, float] = {}
            for j, req in zip(wave, sub.requests, strict=True):
                ds = ds_of[j]
                name = f"{req.tenant}\x00{j}"  # tenant names are printable: no collision
                pseudo.append(_pseudo(req, name))
                if req.tenant in budgets:
                    own_budgets[name] = budgets[req.tenant]
                st = _states(records[j], name, ds, bms, window)
                states[name] = st
                pool_mu[ds] = st.mu[ds]
                if st.surprise:
                    pool_sur[ds] = st.surprise[ds]
            if scope is not None:
                # The scope's pooled duals as each record says they were; its decision count
                # (mu_seq) is the chain check's to verify, one record after another.
                states[SCOPE_BOOK] = TenantState(scope, mu=pool_mu, surprise=pool_sur)
            # Each record's tenant budget under its own name (the policy looks budgets up by
            # tenant); everything else in the context is unchanged.
            run_ctx = replace(ctx, config=replace(cfg, budgets_g=own_budgets)) if budgets else ctx
            _, decisions = policy.decide_estimates(run_ctx, states, replace(sub, requests=pseudo))
        except (CoreError, KeyError, TypeError, ValueError, IndexError) as e:
            for j in wave:
                found[j].append(f"rederive: {e!r}")
            continue
        for j, d in zip(wave, decisions, strict=True):
            fresh[j] = d
            _check_decision(records[j], d, k_of[j], found[j])
    return [V2Result(tuple(f), d) for f, d in zip(found, fresh, strict=True)]
