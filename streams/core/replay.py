"""Re-derive decisions for audits and counterfactual replay (pure).

Two levels:

* ``rederive_record(record, catalog, config)`` re-runs the policy on the estimates *recorded*
  in the decision (per-candidate CO2/accuracy/latency, floor, cap, budget state, duals before)
  and checks the choice, the feasible set, the reason and the duals after. This proves the
  decision follows from its recorded inputs, without the estimator state.
* ``rederive(policy, ctx, tenant_state, request)`` recomputes everything from raw inputs
  (request, intensity view, estimator snapshot, config, tenant state before) and
  ``compare_records`` diffs the new record against the stored one.

``check_chain(records)`` verifies each tenant's dual chain: a decision's duals_before equals the
previous decision's duals_after for the same tenant and policy (accuracy duals per dataset).
``gar-target``'s running deficit is not in the record, so it is only re-derivable with
``rederive``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from streams.core.catalog import Catalog
from streams.core.context import Estimates, RoutingContext
from streams.core.decision import Decision
from streams.core.errors import CoreError
from streams.core.inputs import Request
from streams.core.policies import find_policy, get_policy
from streams.core.policy_config import PolicyConfig
from streams.core.tenant import SCOPE_BOOK, Duals, TenantState

REL_TOL = 1e-9


class ReplayError(CoreError):
    """The record cannot be re-derived (malformed, or unsupported for record-only replay)."""


@dataclass(frozen=True, slots=True)
class Rederived:
    record: dict[str, Any]
    """The record the policy produces from the recorded inputs."""
    mismatches: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.mismatches


def duals_of(value: Any) -> Duals:
    """A record's duals: ``{"lambda", "mu", "nu"}`` (decisions.v1) or ``[lambda, mu, nu]``
    (decisions.v2). Raises ``KeyError``, ``TypeError`` or ``ValueError`` when malformed."""
    if isinstance(value, Mapping):
        return Duals.from_dict(value)
    lam, mu, nu = value
    return Duals(float(lam), float(mu), float(nu))


def _close(a: Any, b: Any, rel_tol: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=1e-12)
    return bool(a == b)


def compare_records(
    stored: Mapping[str, Any],
    fresh: Mapping[str, Any],
    rel_tol: float = REL_TOL,
    keys: Iterable[str] | None = None,
) -> list[str]:
    """Fields that differ (nested dicts/lists compared element-wise with ``rel_tol``)."""
    out: list[str] = []

    def walk(path: str, a: Any, b: Any) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for k in sorted(set(a) | set(b)):
                walk(f"{path}.{k}" if path else str(k), a.get(k), b.get(k))
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                out.append(f"{path}: length {len(a)} != {len(b)}")
                return
            for j, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(f"{path}[{j}]", x, y)
        elif not _close(a, b, rel_tol):
            out.append(f"{path}: {a!r} != {b!r}")

    for k in keys if keys is not None else sorted(set(stored) | set(fresh)):
        walk(k, stored.get(k), fresh.get(k))
    return out


DECISION_KEYS = (
    "candidate",
    "model",
    "region",
    "reason",
    "candidates",
    "duals_after",
    "duals_before",
    "co2_g",
    "tenant_seq",
)


def _tenant_state(rec: Mapping[str, Any], cfg: PolicyConfig) -> TenantState:
    """A state whose window holds the recorded spend/count and that places the request inside
    (or, if it was too late, outside) the window exactly as recorded."""
    ts = int(rec["ts_ms"])
    bms = cfg.bucket_ms
    wm = ts if rec["in_window"] else ts + cfg.budget_window_ms
    before = Duals.from_dict(rec["duals_before"])
    count = int(rec["window_count_before"])
    spend = float(rec["window_spend_g_before"])
    return TenantState(
        tenant=str(rec["tenant"]),
        lam=before.lam,
        mu={str(rec["dataset"]): before.mu},
        nu=before.nu,
        buckets=((wm // bms, spend, count),) if count else (),
        watermark_ms=wm,
        seq=int(rec["tenant_seq"]) - 1,
        window_spend_g=spend if count else 0.0,
        window_count=count,
    )


def _estimates(rec: Mapping[str, Any], catalog: Catalog, cfg: PolicyConfig) -> Estimates:
    c = rec["candidates"]
    k = catalog.n_candidates
    co2 = np.asarray([c["co2_g"]], dtype=np.float64)
    # Recorded per-candidate accuracy = what the policy chose on (optimistic when gar-pd
    # explores); accuracy_est = the chosen candidate's scoring accuracy (what mu stepped on).
    acc_choice = np.asarray([c["accuracy"]], dtype=np.float64)
    acc = acc_choice.copy()
    lat = np.asarray([c["latency_ms"]], dtype=np.float64)
    if co2.shape != (1, k) or acc.shape != (1, k) or lat.shape != (1, k):
        raise ReplayError(f"record has {co2.shape[1]} candidates, catalog {k}")
    if rec.get("accuracy_est") is not None:
        acc[0, int(rec["candidate"])] = float(rec["accuracy_est"])
    eligible = np.ones((1, k), dtype=bool)
    if c.get("eligible") is not None:
        eligible[:] = False
        eligible[0, np.asarray(c["eligible"], dtype=np.int64)] = True
    cap = np.asarray([float(rec["latency_cap_ms"])])
    n_r = len(catalog.regions)
    used = np.full((1, n_r), np.nan)
    age = np.full((1, n_r), -1, dtype=np.int64)
    stale = np.zeros((1, n_r), dtype=bool)
    zi = rec.get("intensity") or {}
    ri = int(catalog.cand_region_idx[int(rec["candidate"])])
    if zi.get("intensity_g_per_kwh") is not None:
        used[0, ri] = float(zi["intensity_g_per_kwh"])
    if zi.get("age_ms") is not None:
        age[0, ri] = int(zi["age_ms"])
    stale[0, ri] = bool(zi.get("stale", False))
    req = Request(
        request_id=str(rec["request_id"]),
        tenant=str(rec["tenant"]),
        dataset=str(rec["dataset"]),
        input_tokens=int(rec.get("input_tokens", 0)),
        output_tokens_est=rec.get("output_tokens_est"),
        client_region=str(rec.get("client_region", "")),
        ts_ms=int(rec["ts_ms"]),
    )
    return Estimates(
        requests=[req],
        dataset_idx=np.asarray([catalog.dataset_idx(req.dataset)]),
        ts_ms=np.asarray([req.ts_ms]),
        floor=np.asarray([float(rec["floor"])]),
        latency_cap_ms=cap,
        co2_g=co2,
        accuracy=acc,
        latency_ms=lat,
        eligible=eligible,
        latency_ok=lat <= (cap * (1.0 - cfg.slo_margin))[:, None],
        intensity_g_per_kwh=used,
        intensity_age_ms=age,
        intensity_stale=stale,
        accuracy_choice=acc_choice,
    )


def rederive_record(record: Mapping[str, Any], catalog: Catalog, config: PolicyConfig) -> Rederived:
    """Re-run ``record['policy']`` on the estimates stored in ``record``."""
    try:
        policy_name = str(record["policy"])
        policy = find_policy(policy_name)
        if policy is not None and not policy.rederivable_from_record:
            raise ReplayError(f"{policy_name} needs full replay (state not in the record)")
        mism: list[str] = []
        if record.get("policy_version") != config.version:
            mism.append(f"policy_version: {record.get('policy_version')!r} != {config.version!r}")
        if record.get("catalog_version") != catalog.version:
            mism.append(
                f"catalog_version: {record.get('catalog_version')!r} != {catalog.version!r}"
            )
        ctx = replace(
            RoutingContext.build(catalog, config), carbon_ref_g=float(record["carbon_ref_g"])
        )
        est = _estimates(record, catalog, config)
        st = _tenant_state(record, config)
        budget = record.get("budget_g")
        if budget != config.budget_for(st.tenant):
            mism.append(f"budget_g: {budget!r} != {config.budget_for(st.tenant)!r}")
        states = {st.tenant: st}
        scope = record.get("mu_scope")
        if scope is not None:
            # Pooled accuracy duals: the record's mu is its scope's, counted by mu_seq.
            states[SCOPE_BOOK] = TenantState(
                tenant=str(scope),
                mu={str(record["dataset"]): Duals.from_dict(record["duals_before"]).mu},
                seq=int(record["mu_seq"]) - 1,
            )
        _, decisions = get_policy(policy_name).decide_estimates(ctx, states, est)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ReplayError(f"malformed decision record: {e!r}") from e
    fresh = decisions[0].to_record()
    mism += compare_records(record, fresh, keys=DECISION_KEYS)
    return Rederived(fresh, tuple(mism))


def rederive(
    policy: str,
    ctx: RoutingContext,
    tenant_state: TenantState | None,
    request: Request,
    scope_state: TenantState | None = None,
) -> Decision:
    """Recompute one decision from raw inputs (``ctx`` = catalog, config, estimator snapshot
    and intensity view as they were; ``tenant_state`` = the tenant's state before;
    ``scope_state`` = its scope's, when the accuracy duals are pooled)."""
    states = {} if tenant_state is None else {request.tenant: tenant_state}
    if scope_state is not None:
        states[SCOPE_BOOK] = scope_state
    _, decisions = get_policy(policy).decide_batch(ctx, states, [request])
    return decisions[0]


def check_chain(
    records: Iterable[Mapping[str, Any]], config: PolicyConfig | None = None
) -> list[str]:
    """Dual-chain breaks, in stream order. lambda and nu chain per (policy, tenant) with
    ``tenant_seq``; mu chains per (policy, tenant, dataset), or per (policy, scope, dataset)
    with ``mu_seq`` when the record names a ``mu_scope`` (pooled duals; feed a scope's records
    in its decision order, i.e. its decisions partition's offset order). With ``config``, a
    gar-pd first decision on a dataset listed in ``config.mu_init_by_dataset`` (per tenant, or
    per scope when pooled) must start from that mu (capped at mu_max); other first decisions
    (warm start) are not checked."""
    tenants: dict[tuple[str, str], tuple[Duals, int]] = {}
    mus: dict[tuple[str, str, str], float] = {}
    scope_seq: dict[tuple[str, str], int] = {}
    out: list[str] = []
    starts = {} if config is None else config.mu_init_by_dataset
    for rec in records:
        policy, rid = str(rec["policy"]), rec["request_id"]
        key = (policy, str(rec["tenant"]))
        before = duals_of(rec["duals_before"])
        after = duals_of(rec["duals_after"])
        ds = str(rec["dataset"])
        seq = int(rec["tenant_seq"])
        prev = tenants.get(key)
        if prev is not None:
            p_duals, p_seq = prev
            if seq != p_seq + 1:
                out.append(f"{rid}: tenant_seq {seq} after {p_seq}")
            if not (
                _close(before.lam, p_duals.lam, REL_TOL) and _close(before.nu, p_duals.nu, REL_TOL)
            ):
                out.append(f"{rid}: lambda/nu before != previous after")
        tenants[key] = (after, seq)
        scope = rec.get("mu_scope")
        owner = f"scope {scope}" if scope is not None else f"tenant {key[1]}"
        if scope is not None:
            skey = (policy, str(scope))
            mseq = int(rec.get("mu_seq", 0))
            p_mseq = scope_seq.get(skey)
            if p_mseq is not None and mseq != p_mseq + 1:
                out.append(f"{rid}: mu_seq {mseq} of scope {scope} after {p_mseq}")
            scope_seq[skey] = mseq
        mkey = (policy, owner, ds)
        p_mu = mus.get(mkey)
        if p_mu is not None and not _close(before.mu, p_mu, REL_TOL):
            out.append(f"{rid}: mu[{ds}] of {owner} before != previous after")
        if (
            p_mu is None
            and ds in starts
            and config is not None
            and _first_mu_from_config(policy)
            and not _close(before.mu, min(float(starts[ds]), config.mu_max), REL_TOL)
        ):
            out.append(f"{rid}: first mu[{ds}] {before.mu!r} != mu_init_by_dataset")
        mus[mkey] = after.mu
    return out


def _first_mu_from_config(policy_name: str) -> bool:
    policy = find_policy(policy_name)
    return policy is not None and policy.first_mu_from_config


def priced_ahead(record: Mapping[str, Any]) -> str | None:
    """A problem line if the decision was priced with an intensity reading stamped after the
    request's event time (a reading from the request's future), else None."""
    reading = record.get("intensity")
    if not isinstance(reading, Mapping):
        return None
    reading_ts, ts = reading.get("ts_ms"), record.get("ts_ms")
    if isinstance(reading_ts, int) and isinstance(ts, int) and reading_ts > ts:
        return (
            f"intensity.ts_ms: {reading_ts} != at or before the request's ts_ms {ts} "
            f"(priced with a reading {reading_ts - ts} ms in its future)"
        )
    return None
