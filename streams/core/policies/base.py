"""The Policy protocol, the name registry and the shared batch engine.

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
from streams.core.errors import PolicyConfigError
from streams.core.inputs import Request
from streams.core.tenant import TenantState, TenantWork

FloatRow = FloatArray


class Policy(Protocol):
    name: str

    def decide_batch(
        self,
        ctx: RoutingContext,
        tenant_states: Mapping[str, TenantState],
        requests: Sequence[Request],
    ) -> tuple[dict[str, TenantState], list[Decision]]: ...

    def decide_estimates(
        self, ctx: RoutingContext, tenant_states: Mapping[str, TenantState], est: Estimates,
    ) -> tuple[dict[str, TenantState], list[Decision]]: ...


class PolicyBase:
    """Implements ``decide_batch`` as ``decide_estimates`` on ``ctx.estimate(requests)``;
    ``decide_estimates`` is also what ``replay`` calls on estimates read back from a record."""

    name = "policy"

    def decide_batch(
        self, ctx: RoutingContext, tenant_states: Mapping[str, TenantState],
        requests: Sequence[Request],
    ) -> tuple[dict[str, TenantState], list[Decision]]:
        return self.decide_estimates(ctx, tenant_states, ctx.estimate(requests))

    def decide_estimates(
        self, ctx: RoutingContext, tenant_states: Mapping[str, TenantState], est: Estimates,
    ) -> tuple[dict[str, TenantState], list[Decision]]:
        raise NotImplementedError


_REGISTRY: dict[str, Callable[[], Policy]] = {}


def register_policy(name: str, factory: Callable[[], Policy]) -> None:
    if name in _REGISTRY:
        raise PolicyConfigError(f"policy {name!r} already registered")
    _REGISTRY[name] = factory


def get_policy(name: str) -> Policy:
    """The policy registered under ``name`` (raises ``PolicyConfigError`` if unknown)."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise PolicyConfigError(
            f"unknown policy {name!r}; known: {', '.join(sorted(_REGISTRY))}"
        ) from None


def policy_names() -> tuple[str, ...]:
    _ensure_loaded()
    return tuple(sorted(_REGISTRY))


def _ensure_loaded() -> None:
    # Policies register themselves on import; import lazily to avoid an import cycle.
    from streams.core.policies import baselines, gar  # noqa: F401


def decide(
    policy: Policy, ctx: RoutingContext, tenant_states: Mapping[str, TenantState],
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


def fallback_row(perm: IntArray, acc: FloatArray, lat: FloatArray, co2: FloatArray,
                 eligible: BoolArray, cap_eff_ms: float, floor_target: float,
                 budget_left_g: float | None, budget_rate_g: float | None) -> int:
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


def fallback_choice(ctx: RoutingContext, est: Estimates, i: int, canon: Canon,
                    floor_target: float, budget_left_g: float | None,
                    budget_rate_g: float | None) -> int:
    """``fallback_row`` on row ``i`` of a batch."""
    cap = float(est.latency_cap_ms[i]) * (1.0 - ctx.config.slo_margin)
    return fallback_row(canon.perm, est.accuracy[i], est.latency_ms[i], est.co2_g[i],
                        est.eligible[i], cap, floor_target, budget_left_g, budget_rate_g)


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
) -> tuple[dict[str, TenantState], list[Decision]]:
    """Decisions of a policy without duals: ``step(i, tenant_work) -> (candidate, reason)``;
    the rolling window is still kept so spend is reported the same way for every policy."""
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
        k, reason = step(i, w)
        lam, mu, nu = w.lam, w.mu.get(datasets[ds_idx[i]], mu_init), w.nu
        w.charge(ts, co2.item(i, k), in_win)
        out.append(Decision(shared, i, k, reason, lam, mu, nu, lam, mu, nu,
                            budget_for(req.tenant), None, spend0, count0, in_win, w.seq))
    return book.frozen(), out
