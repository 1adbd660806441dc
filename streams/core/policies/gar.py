"""GAR policies: the corrected primal-dual ``gar-pd`` and the variants ``gar-fixed``,
``gar-eps`` and ``gar-target``. The rules are stated in docs/routing.md; the pure functions
``pd_scores`` / ``pd_update`` are what ``replay.rederive`` re-runs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from streams.core.catalog import FloatArray, IntArray
from streams.core.context import BoolArray, Estimates, RoutingContext
from streams.core.decision import Decision, Reason
from streams.core.inputs import Request
from streams.core.policies.base import (
    Canon,
    PolicyBase,
    fallback_choice,
    register_policy,
    run_batch,
)
from streams.core.policy_config import PolicyConfig
from streams.core.tenant import Duals, TenantState, TenantWork


# --- the corrected GAR-PD rule (pure) ------------------------------------------------------------
def pd_choose(perm: IntArray, cn_c: FloatArray, acc_c: FloatArray, ln_c: FloatArray,
              pen_c: FloatArray, duals: Duals) -> int:
    """argmin_k (1 + lambda) * co2_k / c_ref - mu * acc_k + nu * lat_k / cap over the feasible set.

    Rows are in canonical candidate order (``perm``); ``cn_c = co2 / c_ref``, ``ln_c = lat /
    cap``, ``pen_c`` is 0 where feasible and +inf elsewhere. Carbon is normalised by c_ref so it
    is commensurable with accuracy (in [0, 1]) and latency (a fraction of the cap): lambda then
    re-weights carbon *against* the other two terms, which is what lets it move a decision (the
    paper's argmin (1 + lambda) * carbon rescales every candidate equally and never does).
    With mu = nu = 0 the argmin is that of carbon alone, computed without the (1 + lambda)
    factor so that rounding can never create a tie.
    """
    if duals.mu == 0.0 and duals.nu == 0.0:
        return int(perm[int((cn_c + pen_c).argmin())])
    s = cn_c * (1.0 + duals.lam) - acc_c * duals.mu + pen_c
    if duals.nu:
        s = s + ln_c * duals.nu
    return int(perm[int(s.argmin())])


def floor_target(cfg: PolicyConfig, floor: float) -> float:
    """The accuracy the mu dual steers the average to: F_i + floor_margin."""
    return floor + cfg.floor_margin


def pd_update(cfg: PolicyConfig, before: Duals, co2_g: float, accuracy: float,
              latency_ms: float, floor: float, latency_cap_ms: float,
              budget_g: float | None, window_count: int, carbon_ref_g: float) -> Duals:
    """Projected dual (sub)gradient steps after choosing a candidate.

    lambda <- clip(lambda + eta_lambda * (co2 - B / n_W) / c_ref, 0, lambda_max)
        where n_W = the tenant's requests in the rolling window including this one, so B / n_W
        is the per-request rate the window allows (lambda is left unchanged without a budget);
    mu     <- clip(mu + eta_mu * (F_i + floor_margin - acc), 0, mu_max)
    nu     <- clip(nu + eta_nu * (lat / cap - latency_target_ratio), 0, nu_max)
    """
    lam = before.lam
    if budget_g is not None:
        rate = budget_g / max(window_count, 1)
        lam = min(max(lam + cfg.eta_lambda * (co2_g - rate) / carbon_ref_g, 0.0),
                  cfg.lambda_max)
    mu = min(max(before.mu + cfg.eta_mu * (floor_target(cfg, floor) - accuracy), 0.0),
             cfg.mu_max)
    nu = min(max(before.nu + cfg.eta_nu * (latency_ms / latency_cap_ms
                                           - cfg.latency_target_ratio), 0.0), cfg.nu_max)
    return Duals(lam, mu, nu)


def accuracy_ok(cfg: PolicyConfig, est: Estimates) -> BoolArray:
    """Per-request accuracy filter of the mode: hard floor (+margin) or floor - max loss."""
    thr = est.floor + cfg.floor_margin if cfg.floor_hard else est.floor - cfg.max_accuracy_loss
    ok: BoolArray = est.accuracy >= thr[:, None]
    return ok


def hard_filter(cfg: PolicyConfig, est: Estimates) -> BoolArray:
    out: BoolArray = est.eligible & est.latency_ok & accuracy_ok(cfg, est)
    return out


def budget_left(w: TenantWork, budget_g: float | None) -> float | None:
    return None if budget_g is None else budget_g - w.spend_g


# --- gar-pd --------------------------------------------------------------------------------------
class GarPD(PolicyBase):
    name = "gar-pd"

    def decide_estimates(
        self, ctx: RoutingContext, tenant_states: Mapping[str, TenantState], est: Estimates,
    ) -> tuple[dict[str, TenantState], list[Decision]]:
        cfg = ctx.config
        canon = Canon(ctx)
        perm = canon.perm
        c_ref = ctx.carbon_ref_g
        hard = hard_filter(cfg, est)
        hard_c = hard[:, perm]
        co2_c = est.co2_g[:, perm]
        cn_c = co2_c / c_ref
        acc_c = est.accuracy[:, perm]
        ln_c = est.latency_ms[:, perm] / est.latency_cap_ms[:, None]
        pen_all = np.where(hard_c, 0.0, np.inf)
        any_hard: BoolArray = np.any(hard, axis=1)
        # mu = nu = 0 (common): the choice is the greenest feasible one, lambda-free.
        k_green = perm[np.argmin(cn_c + pen_all, axis=1)]
        co2, acc, lat = est.co2_g, est.accuracy, est.latency_ms
        floors, caps, ds_idx = est.floor, est.latency_cap_ms, est.dataset_idx
        datasets = ctx.catalog.datasets
        budget_hard = cfg.budget_hard
        mu_init = cfg.mu_init

        def step(i: int, req: Request, w: TenantWork, in_win: bool,
                 budget: float | None) -> tuple[int, str, BoolArray, Duals, Duals]:
            ds = datasets[ds_idx[i]]
            before = Duals(w.lam, w.mu.get(ds, mu_init), w.nu)
            n_w = w.count + (1 if in_win else 0)
            left = budget_left(w, budget) if budget_hard else None
            if left is None:
                feas = hard[i]
                feasible_any = bool(any_hard[i])
                pen = pen_all[i]
            else:
                feas = hard[i] & (co2[i] <= left)
                pen = np.where(feas[perm], 0.0, np.inf)
                feasible_any = bool(feas.any())
            if not feasible_any:
                reason = Reason.INFEASIBLE_FALLBACK
                rate = None if budget is None else budget / max(n_w, 1)
                k = fallback_choice(ctx, est, i, canon, floor_target(cfg, float(floors[i])),
                                    left, rate)
            elif left is None and before.mu == 0.0 and before.nu == 0.0:
                reason, k = Reason.OPTIMAL, int(k_green[i])
            else:
                reason = Reason.OPTIMAL
                k = pd_choose(perm, cn_c[i], acc_c[i], ln_c[i], pen, before)
            after = pd_update(cfg, before, float(co2[i, k]), float(acc[i, k]),
                              float(lat[i, k]), float(floors[i]), float(caps[i]), budget,
                              n_w, c_ref)
            w.lam, w.nu = after.lam, after.nu
            w.mu[ds] = after.mu
            return k, reason, feas, before, after

        return run_batch(self.name, ctx, est, tenant_states, step)


# --- variants ------------------------------------------------------------------------------------
def _keep(w: TenantWork, ds: str, mu_init: float) -> Duals:
    return Duals(w.lam, w.mu.get(ds, mu_init), w.nu)


class _MinCarbonOverFilter(PolicyBase):
    """Least CO2 over a per-request feasible mask (no duals); fallback if the mask is empty."""

    name = "min-carbon-over-filter"

    def feasible(self, cfg: PolicyConfig, est: Estimates) -> BoolArray:
        raise NotImplementedError

    def decide_estimates(
        self, ctx: RoutingContext, tenant_states: Mapping[str, TenantState], est: Estimates,
    ) -> tuple[dict[str, TenantState], list[Decision]]:
        cfg = ctx.config
        canon = Canon(ctx)
        perm = canon.perm
        feas = self.feasible(cfg, est)
        k_all = perm[np.argmin(np.where(feas[:, perm], est.co2_g[:, perm], np.inf), axis=1)]
        any_f: BoolArray = np.any(feas, axis=1)
        datasets = ctx.catalog.datasets

        def step(i: int, req: Request, w: TenantWork, in_win: bool,
                 budget: float | None) -> tuple[int, str, BoolArray, Duals, Duals]:
            d = _keep(w, datasets[est.dataset_idx[i]], cfg.mu_init)
            if any_f[i]:
                return int(k_all[i]), Reason.OPTIMAL, feas[i], d, d
            k = fallback_choice(ctx, est, i, canon, floor_target(cfg, float(est.floor[i])),
                                None, None)
            return k, Reason.INFEASIBLE_FALLBACK, feas[i], d, d

        return run_batch(self.name, ctx, est, tenant_states, step)


class GarFixed(_MinCarbonOverFilter):
    """Static floor filter (acc >= F_i + floor_margin) and SLO filter, then least CO2."""

    name = "gar-fixed"

    def feasible(self, cfg: PolicyConfig, est: Estimates) -> BoolArray:
        out: BoolArray = est.eligible & est.latency_ok & (
            est.accuracy >= (est.floor + cfg.floor_margin)[:, None])
        return out


class GarEps(_MinCarbonOverFilter):
    """Least CO2 among SLO-feasible candidates within eps of the best such accuracy."""

    name = "gar-eps"

    def feasible(self, cfg: PolicyConfig, est: Estimates) -> BoolArray:
        base = est.eligible & est.latency_ok
        best = np.where(base, est.accuracy, -np.inf).max(axis=1)
        out: BoolArray = base & (est.accuracy >= (best - cfg.eps)[:, None])
        return out


DEFICIT_BOUND = 1.0


class GarTarget(PolicyBase):
    """Aim the running average accuracy per (tenant, dataset) exactly at the floor.

    Keep the deficit s = sum(F_i - acc_chosen), clipped to [-1, 1]. Request i takes the least
    CO2 SLO-feasible candidate with acc >= F_i + s (the threshold is capped at the best such
    accuracy, so the set is never empty): behind target it buys accuracy above the floor, ahead
    of target it may go below it, so the average converges to F at least carbon.
    """

    name = "gar-target"

    def decide_estimates(
        self, ctx: RoutingContext, tenant_states: Mapping[str, TenantState], est: Estimates,
    ) -> tuple[dict[str, TenantState], list[Decision]]:
        cfg = ctx.config
        canon = Canon(ctx)
        perm = canon.perm
        base = est.eligible & est.latency_ok
        base_c = base[:, perm]
        acc_c = est.accuracy[:, perm]
        co2_c = est.co2_g[:, perm]
        best = np.where(base, est.accuracy, -np.inf).max(axis=1)
        any_b: BoolArray = np.any(base, axis=1)
        datasets = ctx.catalog.datasets

        def step(i: int, req: Request, w: TenantWork, in_win: bool,
                 budget: float | None) -> tuple[int, str, BoolArray, Duals, Duals]:
            ds = datasets[est.dataset_idx[i]]
            d = _keep(w, ds, cfg.mu_init)
            f = float(est.floor[i])
            if not any_b[i]:
                k = fallback_choice(ctx, est, i, canon, f, None, None)
                return k, Reason.INFEASIBLE_FALLBACK, base[i], d, d
            s = w.deficit.get(ds, 0.0)
            thr = min(f + s, float(best[i]))
            ok_c = base_c[i] & (acc_c[i] >= thr)
            k = canon.argmin(np.where(ok_c, co2_c[i], np.inf))
            w.deficit[ds] = min(max(s + f - float(est.accuracy[i, k]), -DEFICIT_BOUND),
                                DEFICIT_BOUND)
            feas = np.empty_like(ok_c)
            feas[perm] = ok_c
            return k, Reason.OPTIMAL, feas, d, d

        return run_batch(self.name, ctx, est, tenant_states, step)


register_policy(GarPD.name, GarPD)
register_policy(GarFixed.name, GarFixed)
register_policy(GarEps.name, GarEps)
register_policy(GarTarget.name, GarTarget)
