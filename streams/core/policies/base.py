"""The Policy protocol, its capabilities and the shared batch engine (the names are in
``registry``).

Every policy is ``decide_batch(ctx, tenant_states, requests) -> (new_states, decisions)``:

* ``tenant_states`` maps tenant -> ``TenantState`` (missing tenants start fresh);
* ``new_states`` holds the updated state of every tenant that appears in ``requests``
  (the caller merges it into its table);
* ``decisions[i]`` belongs to ``requests[i]``.

Deciding a batch equals deciding its requests one at a time, threading the states through.
Ties between candidates break by (model name, region name), so the catalog's candidate order
never changes a decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

from streams.core.catalog import FloatArray, IntArray
from streams.core.context import BoolArray, Estimates, RoutingContext
from streams.core.decision import Decision, DecisionContext
from streams.core.inputs import Request
from streams.core.policy_config import PolicyConfig
from streams.core.tenant import TenantState, TenantWork

FloatRow = FloatArray


class Policy(Protocol):
    """A routing policy. Besides deciding, it declares what the shell must do for it, so that
    no code outside ``streams.core.policies`` needs to know a policy by name:

    * ``uses_feedback``: graded completions are folded into its tenant states
      (``core.fold_feedback``);
    * ``redo_side_state(work, dataset, config)``: what a decision changes in the tenant state
      beyond what its record carries (duals, budget window, sequence), redone by crash recovery
      for decisions logged after the last checkpoint;
    * ``rederivable_from_record``: its decision can be re-derived from the record alone
      (otherwise only a full replay reproduces it);
    * ``first_mu_from_config``: a tenant's first mu on a dataset is the config's
      ``mu_init_by_dataset`` entry (the audit's dual-chain check holds it to that).
    """

    name: str
    uses_feedback: bool
    rederivable_from_record: bool
    first_mu_from_config: bool

    def redo_side_state(self, work: TenantWork, dataset: str, config: PolicyConfig) -> None: ...

    def decide_batch(
        self,
        ctx: RoutingContext,
        tenant_states: Mapping[str, TenantState],
        requests: Sequence[Request],
    ) -> tuple[dict[str, TenantState], list[Decision]]: ...

    def decide_estimates(
        self,
        ctx: RoutingContext,
        tenant_states: Mapping[str, TenantState],
        est: Estimates,
    ) -> tuple[dict[str, TenantState], list[Decision]]: ...


class PolicyBase:
    """Implements ``decide_batch`` as ``decide_estimates`` on ``ctx.estimate(requests)``;
    ``decide_estimates`` is also what ``replay`` calls on estimates read back from a record."""

    name = "policy"
    uses_feedback = False
    rederivable_from_record = True
    first_mu_from_config = False

    def redo_side_state(self, work: TenantWork, dataset: str, config: PolicyConfig) -> None:
        """Nothing beyond the record (the duals, window and sequence are replayed by the caller)."""

    def decide_batch(
        self,
        ctx: RoutingContext,
        tenant_states: Mapping[str, TenantState],
        requests: Sequence[Request],
    ) -> tuple[dict[str, TenantState], list[Decision]]:
        if not ctx.config.tenant_overrides:
            return self.decide_estimates(ctx, tenant_states, ctx.estimate(requests))
        return self._decide_by_tenant_config(ctx, tenant_states, requests)

    def _decide_by_tenant_config(
        self,
        ctx: RoutingContext,
        tenant_states: Mapping[str, TenantState],
        requests: Sequence[Request],
    ) -> tuple[dict[str, TenantState], list[Decision]]:
        """Tenants with an override are decided under their own config, the rest together
        under the global one. A tenant's requests stay in order within its group, and the
        states (scope-wide ones too) are threaded from group to group."""
        overridden = ctx.config.tenant_overrides
        groups: dict[str | None, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.tenant if r.tenant in overridden else None, []).append(i)
        states = dict(tenant_states)
        changed: dict[str, TenantState] = {}
        out: list[Decision | None] = [None] * len(requests)
        for tenant, idx in groups.items():
            sub = ctx if tenant is None else ctx.for_tenant(tenant)
            new, decisions = self.decide_estimates(
                sub, states, sub.estimate([requests[i] for i in idx])
            )
            states.update(new)
            changed.update(new)
            for i, d in zip(idx, decisions, strict=True):
                out[i] = d
        return changed, [d for d in out if d is not None]

    def decide_estimates(
        self,
        ctx: RoutingContext,
        tenant_states: Mapping[str, TenantState],
        est: Estimates,
    ) -> tuple[dict[str, TenantState], list[Decision]]:
        raise NotImplementedError


def decide(
    policy: Policy,
    ctx: RoutingContext,
    tenant_states: Mapping[str, TenantState],
    request: Request,
) -> tuple[dict[str, TenantState], Decision]:
    """One-at-a-time convenience wrapper around ``decide_batch``."""
    states, decisions = policy.decide_batch(ctx, tenant_states, [request])
    return states, decisions[0]


# --- shared helpers ------------------------------------------------------------------------------
class Canon:
    """Candidate columns in canonical (model, region) name order: ``argmin`` then returns the
    first minimum in name order, which makes decisions independent of the catalog's order."""

    __slots__ = ("perm",)

    def __init__(self, ctx: RoutingContext) -> None:
        self.perm = np.argsort(ctx.catalog.cand_rank, kind="stable")

    def argmin(self, values_canon: FloatRow) -> int:
        return int(self.perm[int(values_canon.argmin())])


def fallback_row(
    perm: IntArray,
    acc: FloatArray,
    lat: FloatArray,
    co2: FloatArray,
    eligible: BoolArray,
    cap_eff_ms: float,
    floor_target: float,
    budget_left_g: float | None,
    budget_rate_g: float | None,
) -> int:
    """Least normalised violation among eligible candidates; ties -> least CO2 -> names.
    Rows are in catalog order; ``cap_eff_ms`` is the cap after the SLO margin.

    violation_k = max(0, F - acc_k) / F + max(0, lat_k - cap') / cap'
                  [+ max(0, co2_k - budget_left) / (B / n_W)  when the budget is hard]

    The budget term is normalised by the per-request allowance B / n_W (not by B), so that one
    request's overspend weighs like a relative miss of the floor or the SLO.
    """
    acc, lat, co2 = acc[perm], lat[perm], co2[perm]
    f = max(floor_target, 1e-9)
    v = np.maximum(0.0, floor_target - acc) / f + np.maximum(0.0, lat - cap_eff_ms) / cap_eff_ms
    if budget_left_g is not None and budget_rate_g is not None:
        v = v + np.maximum(0.0, co2 - budget_left_g) / max(budget_rate_g, 1e-12)
    v = np.where(eligible[perm], v, np.inf)
    best = v.min()
    return int(perm[int(np.where(v <= best, co2, np.inf).argmin())])


def fallback_choice(
    ctx: RoutingContext,
    est: Estimates,
    i: int,
    canon: Canon,
    floor_target: float,
    budget_left_g: float | None,
    budget_rate_g: float | None,
) -> int:
    """``fallback_row`` on row ``i`` of a batch."""
    cap = float(est.latency_cap_ms[i]) * (1.0 - ctx.config.slo_margin)
    return fallback_row(
        canon.perm,
        est.accuracy[i],
        est.latency_ms[i],
        est.co2_g[i],
        est.eligible[i],
        cap,
        floor_target,
        budget_left_g,
        budget_rate_g,
    )


StepFn = Callable[[int, TenantWork], tuple[int, str]]


class TenantBook:
    """Per-batch tenant working states: created on first use from ``tenant_states``."""

    __slots__ = ("bucket_ms", "n_buckets", "states", "works")

    def __init__(self, ctx: RoutingContext, tenant_states: Mapping[str, TenantState]) -> None:
        cfg = ctx.config
        self.states = tenant_states
        self.bucket_ms, self.n_buckets = cfg.bucket_ms, cfg.budget_buckets
        self.works: dict[str, TenantWork] = {}

    def get(self, tenant: str) -> TenantWork:
        w = self.works.get(tenant)
        if w is None:
            st = self.states.get(tenant) or TenantState(tenant)
            w = self.works[tenant] = TenantWork(st, self.bucket_ms, self.n_buckets)
        return w

    def frozen(self) -> dict[str, TenantState]:
        return {t: w.freeze() for t, w in self.works.items()}


def run_batch(
    policy_name: str,
    ctx: RoutingContext,
    est: Estimates,
    tenant_states: Mapping[str, TenantState],
    feasible: BoolArray,
    step: StepFn,
    *,
    track_deficit: bool = False,
) -> tuple[dict[str, TenantState], list[Decision]]:
    """Decisions of a policy without duals: ``step(i, tenant_work) -> (candidate, reason)``;
    the rolling window is still kept so spend is reported the same way for every policy.
    ``track_deficit``: the step keeps a running deficit per (tenant, dataset) in
    ``TenantWork.deficit``; each decision carries it before and after (decisions.v2)."""
    cfg = ctx.config
    shared = DecisionContext(policy_name, ctx, est, feasible)
    book = TenantBook(ctx, tenant_states)
    out: list[Decision] = []
    co2 = est.co2_g
    ds_idx = est.dataset_idx.tolist()
    datasets = ctx.catalog.datasets
    mu_init = cfg.mu_init
    budget_for = cfg.budget_for
    for i, req in enumerate(est.requests):
        ts = req.ts_ms
        w = book.get(req.tenant)
        in_win = w.advance(ts)
        spend0, count0 = w.spend_g, w.count
        ds = datasets[ds_idx[i]]
        d0 = w.deficit.get(ds, 0.0) if track_deficit else 0.0
        k, reason = step(i, w)
        lam, mu, nu = w.lam, w.mu.get(ds, mu_init), w.nu
        w.charge(ts, co2.item(i, k), in_win)
        out.append(
            Decision(
                shared,
                i,
                k,
                reason,
                lam,
                mu,
                nu,
                lam,
                mu,
                nu,
                budget_for(req.tenant),
                None,
                spend0,
                count0,
                in_win,
                w.seq,
                deficit=(d0, w.deficit.get(ds, 0.0)) if track_deficit else None,
            )
        )
    return book.frozen(), out
