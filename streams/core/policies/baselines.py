"""Baselines. Each honours the request's allow/deny lists (eligibility) and nothing else
unless stated; none has duals (duals_before == duals_after). Rules:

* ``always-largest``: the eligible candidate of the model with most parameters; among its
  regions the lowest estimated latency (a carbon-unaware operator picks the closest region).
* ``always-smallest``: the same with the fewest parameters.
* ``random``: uniform over eligible candidates, seeded by (config.seed, request_id) so the
  choice is reproducible and independent of batching.
* ``accuracy-greedy``: highest scoring accuracy among SLO-feasible eligible candidates
  (ties: lower latency); carbon-unaware.
* ``carbon-greedy``: least CO2 among SLO-feasible eligible candidates; ignores floors.
* ``largest-greenest-region``: the largest eligible model in the region where it emits least
  CO2 right now (intensity x PUE).
Where an SLO-filtered set is empty, the SLO filter is dropped (reason ``infeasible_fallback``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from streams.core.context import BoolArray, Estimates, RoutingContext
from streams.core.decision import Decision, Reason
from streams.core.inputs import Request
from streams.core.policies.base import Canon, PolicyBase, register_policy, run_batch
from streams.core.tenant import Duals, TenantState, TenantWork


def _lexmin(canon: Canon, primary: np.ndarray, secondary: np.ndarray,
            mask: BoolArray) -> tuple[int, bool]:
    """argmin of (primary, secondary, names) over mask; falls back to all-True if empty."""
    ok = mask.any()
    m = mask if ok else np.ones_like(mask)
    perm = canon.perm
    p = np.where(m[perm], primary[perm], np.inf)
    s = np.where(p <= p.min(), secondary[perm], np.inf)
    return canon.argmin(s), bool(ok)


class _Baseline(PolicyBase):
    name = "baseline"

    def choose(self, ctx: RoutingContext, est: Estimates, i: int, canon: Canon
               ) -> tuple[int, bool]:
        raise NotImplementedError

    def decide_estimates(
        self, ctx: RoutingContext, tenant_states: Mapping[str, TenantState], est: Estimates,
    ) -> tuple[dict[str, TenantState], list[Decision]]:
        canon = Canon(ctx)
        datasets = ctx.catalog.datasets
        mu_init = ctx.config.mu_init

        def step(i: int, req: Request, w: TenantWork, in_win: bool,
                 budget: float | None) -> tuple[int, str, BoolArray, Duals, Duals]:
            d = Duals(w.lam, w.mu.get(datasets[est.dataset_idx[i]], mu_init), w.nu)
            k, ok = self.choose(ctx, est, i, canon)
            return (k, Reason.BASELINE if ok else Reason.INFEASIBLE_FALLBACK,
                    est.eligible[i], d, d)

        return run_batch(self.name, ctx, est, tenant_states, step)


def _params(ctx: RoutingContext) -> np.ndarray:
    return ctx.params_b[ctx.catalog.cand_model_idx]


class AlwaysLargest(_Baseline):
    name = "always-largest"
    sign = -1.0

    def choose(self, ctx: RoutingContext, est: Estimates, i: int, canon: Canon
               ) -> tuple[int, bool]:
        el = est.eligible[i]
        p = self.sign * _params(ctx)
        best = np.where(el, p, np.inf).min()
        return _lexmin(canon, est.latency_ms[i], est.co2_g[i], el & (p <= best))


class AlwaysSmallest(AlwaysLargest):
    name = "always-smallest"
    sign = 1.0


class RandomChoice(_Baseline):
    name = "random"

    def choose(self, ctx: RoutingContext, est: Estimates, i: int, canon: Canon
               ) -> tuple[int, bool]:
        req = est.requests[i]
        h = hashlib.blake2b(f"{ctx.config.seed}:{req.request_id}".encode(), digest_size=8)
        # Pick among eligible candidates in canonical order, so catalog order is irrelevant.
        el_c = np.flatnonzero(est.eligible[i, canon.perm])
        j = int.from_bytes(h.digest(), "big") % len(el_c)
        return int(canon.perm[el_c[j]]), True


class AccuracyGreedy(_Baseline):
    name = "accuracy-greedy"

    def choose(self, ctx: RoutingContext, est: Estimates, i: int, canon: Canon
               ) -> tuple[int, bool]:
        mask = est.eligible[i] & est.latency_ok[i]
        if not mask.any():
            k, _ = _lexmin(canon, -est.accuracy[i], est.latency_ms[i], est.eligible[i])
            return k, False
        return _lexmin(canon, -est.accuracy[i], est.latency_ms[i], mask)


class CarbonGreedy(_Baseline):
    name = "carbon-greedy"

    def choose(self, ctx: RoutingContext, est: Estimates, i: int, canon: Canon
               ) -> tuple[int, bool]:
        mask = est.eligible[i] & est.latency_ok[i]
        if not mask.any():
            k, _ = _lexmin(canon, est.co2_g[i], est.latency_ms[i], est.eligible[i])
            return k, False
        return _lexmin(canon, est.co2_g[i], est.latency_ms[i], mask)


class LargestGreenestRegion(_Baseline):
    name = "largest-greenest-region"

    def choose(self, ctx: RoutingContext, est: Estimates, i: int, canon: Canon
               ) -> tuple[int, bool]:
        el = est.eligible[i]
        p = -_params(ctx)
        best = np.where(el, p, np.inf).min()
        return _lexmin(canon, est.co2_g[i], est.latency_ms[i], el & (p <= best))


for _cls in (AlwaysLargest, AlwaysSmallest, RandomChoice, AccuracyGreedy, CarbonGreedy,
             LargestGreenestRegion):
    register_policy(_cls.name, _cls)
