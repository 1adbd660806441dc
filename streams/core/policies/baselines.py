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

from streams.core.catalog import FloatArray
from streams.core.context import BoolArray, Estimates, RoutingContext
from streams.core.decision import Decision, Reason
from streams.core.policies.base import Canon, PolicyBase, run_batch
from streams.core.tenant import TenantState, TenantWork


def _lexmin(
    canon: Canon, primary: FloatArray, secondary: FloatArray, mask: BoolArray
) -> tuple[list[int], list[bool]]:
    """Per row: argmin of (primary, secondary, names) over mask; rows with an empty mask use
    all candidates (reported as not ok)."""
    ok = np.any(mask, axis=1)
    m = np.where(ok[:, None], mask, True)[:, canon.perm]
    p = np.where(m, primary[:, canon.perm], np.inf)
    best = p.min(axis=1, keepdims=True)
    s = np.where(p <= best, secondary[:, canon.perm], np.inf)
    return canon.perm[np.argmin(s, axis=1)].tolist(), ok.tolist()


class _Baseline(PolicyBase):
    name = "baseline"

    def choose(
        self, ctx: RoutingContext, est: Estimates, canon: Canon
    ) -> tuple[list[int], list[bool]]:
        raise NotImplementedError

    def decide_estimates(
        self,
        ctx: RoutingContext,
        tenant_states: Mapping[str, TenantState],
        est: Estimates,
    ) -> tuple[dict[str, TenantState], list[Decision]]:
        k_all, ok = self.choose(ctx, est, Canon(ctx))
        baseline, fallback = Reason.BASELINE, Reason.INFEASIBLE_FALLBACK

        def step(i: int, w: TenantWork) -> tuple[int, str]:
            return k_all[i], baseline if ok[i] else fallback

        return run_batch(self.name, ctx, est, tenant_states, est.eligible, step)


def _largest_mask(ctx: RoutingContext, est: Estimates, sign: float) -> BoolArray:
    """Eligible candidates of the largest (sign=-1) or smallest (sign=1) eligible model."""
    p = sign * ctx.params_b[ctx.catalog.cand_model_idx]
    best = np.where(est.eligible, p[None, :], np.inf).min(axis=1, keepdims=True)
    out: BoolArray = est.eligible & (p[None, :] <= best)
    return out


class AlwaysLargest(_Baseline):
    name = "always-largest"
    sign = -1.0

    def choose(
        self, ctx: RoutingContext, est: Estimates, canon: Canon
    ) -> tuple[list[int], list[bool]]:
        return _lexmin(canon, est.latency_ms, est.co2_g, _largest_mask(ctx, est, self.sign))


class AlwaysSmallest(AlwaysLargest):
    name = "always-smallest"
    sign = 1.0


class RandomChoice(_Baseline):
    name = "random"

    def choose(
        self, ctx: RoutingContext, est: Estimates, canon: Canon
    ) -> tuple[list[int], list[bool]]:
        seed = ctx.config.seed
        el_c = est.eligible[:, canon.perm]
        out: list[int] = []
        for i, req in enumerate(est.requests):
            h = hashlib.blake2b(f"{seed}:{req.request_id}".encode(), digest_size=8)
            # Pick among eligible candidates in canonical order: catalog order is irrelevant.
            cands = np.flatnonzero(el_c[i])
            out.append(int(canon.perm[cands[int.from_bytes(h.digest(), "big") % len(cands)]]))
        return out, [True] * est.n


class AccuracyGreedy(_Baseline):
    name = "accuracy-greedy"

    def choose(
        self, ctx: RoutingContext, est: Estimates, canon: Canon
    ) -> tuple[list[int], list[bool]]:
        k, ok = _lexmin(canon, -est.accuracy, est.latency_ms, est.eligible & est.latency_ok)
        k2, _ = _lexmin(canon, -est.accuracy, est.latency_ms, est.eligible)
        return [a if o else b for a, b, o in zip(k, k2, ok, strict=True)], ok


class CarbonGreedy(_Baseline):
    name = "carbon-greedy"

    def choose(
        self, ctx: RoutingContext, est: Estimates, canon: Canon
    ) -> tuple[list[int], list[bool]]:
        k, ok = _lexmin(canon, est.co2_g, est.latency_ms, est.eligible & est.latency_ok)
        k2, _ = _lexmin(canon, est.co2_g, est.latency_ms, est.eligible)
        return [a if o else b for a, b, o in zip(k, k2, ok, strict=True)], ok


class LargestGreenestRegion(_Baseline):
    name = "largest-greenest-region"

    def choose(
        self, ctx: RoutingContext, est: Estimates, canon: Canon
    ) -> tuple[list[int], list[bool]]:
        return _lexmin(canon, est.co2_g, est.latency_ms, _largest_mask(ctx, est, -1.0))


BASELINES: tuple[type[_Baseline], ...] = (
    AlwaysLargest,
    AlwaysSmallest,
    RandomChoice,
    AccuracyGreedy,
    CarbonGreedy,
    LargestGreenestRegion,
)
