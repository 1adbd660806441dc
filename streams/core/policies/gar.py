"""GAR policies: the corrected primal-dual ``gar-pd`` and the variants ``gar-fixed``,
``gar-eps`` and ``gar-target``. The rules are stated in docs/routing.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from streams.core.catalog import FloatArray, IntArray
from streams.core.context import BoolArray, Estimates, RoutingContext
from streams.core.decision import Decision, DecisionContext, Reason
from streams.core.policies.base import (
    Canon,
    PolicyBase,
    TenantBook,
    fallback_choice,
    run_batch,
)
from streams.core.policy_config import PolicyConfig
from streams.core.tenant import DEFAULT_SCOPE, SCOPE_BOOK, Duals, TenantState, TenantWork

# Relative float tolerance of the "decision unchanged" bound (see GarPD.decide_estimates).
BOUND_RTOL = 1e-9


# --- the corrected GAR-PD rule (pure) ------------------------------------------------------------
def pd_choose(
    perm: IntArray,
    cn_c: FloatArray,
    acc_c: FloatArray,
    ln_c: FloatArray,
    pen_c: FloatArray,
    duals: Duals,
) -> int:
    """argmin_k (1 + lambda) * co2_k / c_ref - mu * acc_k + nu * lat_k / cap over the feasible set.

    Rows are in canonical candidate order (``perm``); ``cn_c = co2 / c_ref``, ``ln_c = lat /
    cap``, ``pen_c`` is 0 where feasible and +inf elsewhere. Carbon is normalised by c_ref so it
    is commensurable with accuracy (in [0, 1]) and latency (a fraction of the cap): lambda then
    re-weights carbon *against* the other two terms, which is what lets it move a decision (the
    paper's argmin (1 + lambda) * carbon rescales every candidate equally and never does).
    With mu = nu = 0 the argmin is that of carbon alone, computed without the (1 + lambda)
    factor so that rounding can never create a tie.
    """
    return _pd_argmin(perm, cn_c, acc_c, ln_c, pen_c, duals.lam, duals.mu, duals.nu)


def _pd_argmin(
    perm: IntArray,
    cn_c: FloatArray,
    acc_c: FloatArray,
    ln_c: FloatArray,
    pen_c: FloatArray,
    lam: float,
    mu: float,
    nu: float,
) -> int:
    if mu == 0.0 and nu == 0.0:
        return int(perm[int((cn_c + pen_c).argmin())])
    s = cn_c * (1.0 + lam) - acc_c * mu + pen_c
    if nu:
        s = s + ln_c * nu
    return int(perm[int(s.argmin())])


def warm_mu(
    cn_c: FloatArray,
    acc_c: FloatArray,
    ln_c: FloatArray,
    pen_c: FloatArray,
    lam: float,
    nu: float,
    target: float,
    mu_max: float,
) -> float:
    """The least mu >= 0 at which the gar-pd argmin over the feasible row has accuracy >=
    ``target`` (the per-request price of the floor), capped at mu_max; 0 if the greenest
    candidate already meets it, mu_max if no feasible candidate does. With costs
    s_k = (1 + lam) c~_k + nu l~_k, candidate h (acc >= target) beats j (acc < target) once
    mu >= (s_h - s_j) / (a_h - a_j); the argmin meets the target once some h beats every j."""
    ok = np.isfinite(pen_c)
    if not ok.any():
        return 0.0
    cost = cn_c * (1.0 + lam) + ln_c * nu
    hi = ok & (acc_c >= target)
    lo = ok & ~hi
    if not hi.any():
        return mu_max
    if not lo.any():
        return 0.0
    c_h, a_h = cost[hi][:, None], acc_c[hi][:, None]
    c_j, a_j = cost[lo][None, :], acc_c[lo][None, :]
    need = np.maximum((c_h - c_j) / (a_h - a_j), 0.0).max(axis=1)  # per h: beats every j
    return float(min(need.min(), mu_max))


def floor_target(cfg: PolicyConfig, floor: float) -> float:
    """F_i + floor_margin: the accuracy the mu dual steers the average to when the dataset has
    no ``floor_targets`` entry (in general ``PolicyConfig.mu_target``)."""
    return floor + cfg.floor_margin


def accuracy_ok(cfg: PolicyConfig, est: Estimates, acc: FloatArray | None = None) -> BoolArray:
    """Per-request accuracy filter of the mode: hard floor (+margin) or floor - max loss, on
    ``acc`` (default: the scoring accuracy)."""
    thr = est.floor + cfg.floor_margin if cfg.floor_hard else est.floor - cfg.max_accuracy_loss
    ok: BoolArray = (est.accuracy if acc is None else acc) >= thr[:, None]
    return ok


def hard_filter(cfg: PolicyConfig, est: Estimates, acc: FloatArray | None = None) -> BoolArray:
    out: BoolArray = est.eligible & est.latency_ok & accuracy_ok(cfg, est, acc)
    return out


def _feasible_range(feas: BoolArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per row (max - min, max of |x|) of x over the feasible entries (0 where none)."""
    hi = np.where(feas, x, -np.inf).max(axis=1)
    lo = np.where(feas, x, np.inf).min(axis=1)
    ok = np.isfinite(hi)
    rng = np.where(ok, hi - lo, 0.0)
    mag = np.where(ok, np.maximum(np.abs(hi), np.abs(lo)), 0.0)
    return rng, mag


def _bound_weights(
    hard_c: BoolArray,
    cn_c: FloatArray,
    acc_c: FloatArray,
    ln_c: FloatArray,
    lam0: FloatArray,
    mu0: FloatArray,
    nu0: FloatArray,
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Per-row weights of the keep-argmin bound: a dual move of (dl, dm, dn) changes any score
    gap by at most dl * range(c~) + dm * range(a) + dn * range(l~) over the feasible set. The
    float tolerance is relative to the score magnitudes under the guessed duals plus their
    growth with the move (folded into the per-term weights)."""
    cn_rng, cn_max = _feasible_range(hard_c, cn_c)
    acc_rng, acc_max = _feasible_range(hard_c, acc_c)
    ln_rng, ln_max = _feasible_range(hard_c, ln_c)
    scale = (cn_max * (1.0 + lam0) + acc_max * mu0 + ln_max * nu0 + 1.0) * BOUND_RTOL
    return (
        (cn_rng + BOUND_RTOL * cn_max).tolist(),
        (acc_rng + BOUND_RTOL * acc_max).tolist(),
        (ln_rng + BOUND_RTOL * ln_max).tolist(),
        scale.tolist(),
    )


# --- gar-pd --------------------------------------------------------------------------------------
def warmup_begin(w: TenantWork, ds: str, n: int) -> None:
    """A new (tenant, dataset) under the mu warm-up: its first ``n`` mu steps are boosted."""
    if w.warmup is None:
        w.warmup = {}
    w.warmup[ds] = n


def warmup_take(wd: dict[str, int], ds: str) -> int:
    """Take one warm-up step of ``ds``; returns the remaining count before it."""
    wu = wd[ds]
    if wu > 1:
        wd[ds] = wu - 1
    else:
        del wd[ds]
    return wu


def redo_side_state(w: TenantWork, ds: str, cfg: PolicyConfig) -> None:
    """What a gar-pd decision on ``ds`` changes in the tenant state besides the duals, the
    budget window and the sequence (which its record carries): it starts ``ds``'s warm-up on a
    first decision, consumes the pending feedback surprise and takes one warm-up step. Crash
    recovery replays this for decisions logged after the last checkpoint."""
    n = cfg.mu_warmup_n if cfg.mu_warmup_gain > 0.0 else 0
    if n > 0 and ds not in w.mu:
        warmup_begin(w, ds, n)
    if w.surprise:
        w.surprise.pop(ds, None)
    if n > 0 and w.warmup and ds in w.warmup:
        warmup_take(w.warmup, ds)


class GarPD(PolicyBase):
    """Corrected GAR-PD. Dual updates after choosing k for request i (tenant t, dataset d):

    lambda <- clip(lambda + eta_lambda * (co2_k - B / n_W) / c_ref, 0, lambda_max)
        n_W = the tenant's requests in the rolling window including this one, so B / n_W is the
        per-request rate the window allows (unchanged when the tenant has no budget);
    mu_d   <- clip(mu_d + eta_mu * (max(F_i, T_d) + floor_margin - acc_k), 0, mu_max)
        (T_d = floor_targets[d], absent = F_i; a first decision on d starts at
        mu_init_by_dataset[d] when listed, else the warm start or mu_init)
    nu     <- clip(nu + eta_nu * (lat_k / cap_i - latency_target_ratio), 0, nu_max)

    Speed: the argmin of every request is first computed for all rows at once under the duals
    its tenant had at the start of the batch, together with the margin between the best and
    second-best score. In the (unavoidably) sequential pass a row keeps that choice when the
    duals moved too little to close the margin (a rigorous bound plus a float tolerance);
    otherwise it is recomputed. The result is exactly the one-at-a-time result.
    """

    name = "gar-pd"
    uses_feedback = True
    first_mu_from_config = True

    def redo_side_state(self, work: TenantWork, dataset: str, config: PolicyConfig) -> None:
        redo_side_state(work, dataset, config)

    def decide_estimates(
        self,
        ctx: RoutingContext,
        tenant_states: Mapping[str, TenantState],
        est: Estimates,
    ) -> tuple[dict[str, TenantState], list[Decision]]:
        cfg = ctx.config
        n = est.n
        canon = Canon(ctx)
        perm = canon.perm
        c_ref = ctx.carbon_ref_g
        # Exploring (explore_z > 0): choose on the optimistic accuracy, step mu on the scoring
        # accuracy, so a prior that undervalues a model is corrected by trying it while mu
        # still steers the (unbiased) estimate of what was served.
        acc_choice = est.accuracy if est.accuracy_choice is None else est.accuracy_choice
        hard = hard_filter(cfg, est, acc_choice)
        shared = DecisionContext(self.name, ctx, est, hard, est.accuracy_choice is not None)
        book = TenantBook(ctx, tenant_states)
        reqs = est.requests
        datasets = ctx.catalog.datasets
        ds_names = [datasets[j] for j in est.dataset_idx.tolist()]
        mu_init = cfg.mu_init
        mu_init_ds = cfg.mu_init_by_dataset
        # Batch-start duals of each row's tenant (the guess).
        lam0 = np.empty(n)
        mu0 = np.empty(n)
        nu0 = np.empty(n)
        pool_st = tenant_states.get(SCOPE_BOOK) if cfg.mu_pooled else None
        for i, req in enumerate(reqs):
            st = tenant_states.get(req.tenant)
            ds = ds_names[i]
            if cfg.mu_pooled:
                lam0[i], nu0[i] = (0.0, 0.0) if st is None else (st.lam, st.nu)
                mu_g = None if pool_st is None else pool_st.mu.get(ds)
                mu0[i] = mu_init_ds.get(ds, mu_init) if mu_g is None else mu_g
                continue
            if st is None:
                lam0[i], mu0[i], nu0[i] = 0.0, mu_init_ds.get(ds, mu_init), 0.0
            else:
                mu_g = st.mu.get(ds)
                lam0[i], nu0[i] = st.lam, st.nu
                mu0[i] = mu_init_ds.get(ds, mu_init) if mu_g is None else mu_g
        hard_c = hard[:, perm]
        cn_c = est.co2_g[:, perm] / c_ref
        acc_c = acc_choice[:, perm]
        ln_c = est.latency_ms[:, perm] / est.latency_cap_ms[:, None]
        pen_all = np.where(hard_c, 0.0, np.inf)
        any_hard = np.any(hard, axis=1).tolist()
        k_green = perm[np.argmin(cn_c + pen_all, axis=1)].tolist()
        # Same float operations, in the same order, as pd_choose.
        score = cn_c * (1.0 + lam0)[:, None] - acc_c * mu0[:, None] + pen_all + ln_c * nu0[:, None]
        guess_pos = np.argmin(score, axis=1)
        k_guess = perm[guess_pos].tolist()
        if score.shape[1] > 1:
            two = np.partition(score, 1, axis=1)
            with np.errstate(invalid="ignore"):  # inf - inf: no feasible candidate (fallback)
                gap = two[:, 1] - two[:, 0]
            margin = np.nan_to_num(gap, nan=0.0, posinf=np.inf).tolist()
        else:
            margin = [np.inf] * n
        if n > 1:
            cn_rng_l, acc_rng_l, ln_rng_l, scale_l = _bound_weights(
                hard_c, cn_c, acc_c, ln_c, lam0, mu0, nu0
            )
        else:
            # A single row runs under its guessed duals unless mu is warm-started (then its
            # duals differ from the guess and the infinite weights force the recomputation).
            cn_rng_l = acc_rng_l = ln_rng_l = [np.inf]
            scale_l = [0.0]
        lam0_l, mu0_l, nu0_l = lam0.tolist(), mu0.tolist(), nu0.tolist()
        co2, acc, lat = est.co2_g, est.accuracy, est.latency_ms
        floors, caps = est.floor.tolist(), est.latency_cap_ms.tolist()
        # mu's target per row: max(F_i, the dataset's floor target) + floor_margin.
        tgts = (
            [cfg.mu_target(ds, f) for ds, f in zip(ds_names, floors, strict=True)]
            if cfg.floor_targets
            else [f + cfg.floor_margin for f in floors]
        )
        budget_hard = cfg.budget_hard
        budget_for = cfg.budget_for
        eta_l, eta_m, eta_n = cfg.eta_lambda, cfg.eta_mu, cfg.eta_nu
        lam_max, mu_max, nu_max = cfg.lambda_max, cfg.mu_max, cfg.nu_max
        margin_f, target_ratio = cfg.floor_margin, cfg.latency_target_ratio
        warm = cfg.mu_warm_start
        wu_gain, wu_n = cfg.mu_warmup_gain, cfg.mu_warmup_n
        warmup = wu_gain > 0.0 and wu_n > 0
        optimal, fallback = Reason.OPTIMAL, Reason.INFEASIBLE_FALLBACK
        out: list[Decision] = []
        append = out.append
        new_tuple = tuple.__new__
        slots: dict[str, tuple[TenantWork, float | None]] = {}
        # Pooled accuracy duals (mu_pooled): every tenant of the scope shares mu per dataset,
        # held (with its surprise and warm-up) by the scope's state under SCOPE_BOOK.
        pool = book.get(SCOPE_BOOK) if cfg.mu_pooled and n else None  # no requests: no state
        scope_name = None
        if pool is not None:
            scope_name = pool.tenant if pool.tenant != SCOPE_BOOK else DEFAULT_SCOPE
        for i, req in enumerate(reqs):
            tenant, ts, ds = req.tenant, req.ts_ms, ds_names[i]
            slot = slots.get(tenant)
            if slot is None:
                slot = slots[tenant] = (book.get(tenant), budget_for(tenant))
            w, budget = slot
            in_win = w.advance(ts)
            spend0, count0 = w.spend_g, w.count
            n_w = count0 + 1 if in_win else count0
            lam, nu = w.lam, w.nu
            mw = w if pool is None else pool  # who holds the accuracy dual
            mu = mw.mu.get(ds)
            if mu is None:
                if warmup:
                    warmup_begin(mw, ds, wu_n)
                mu_ds = mu_init_ds.get(ds)
                if mu_ds is not None:  # a calibrated start replaces the warm start
                    mu = min(float(mu_ds), mu_max)
                elif warm and any_hard[i]:
                    mu = warm_mu(cn_c[i], acc_c[i], ln_c[i], pen_all[i], lam, nu, tgts[i], mu_max)
                else:
                    mu = mu_init
            left = None if budget is None or not budget_hard else budget - spend0
            reason = optimal
            if left is not None:
                feas = hard[i] & (co2[i] <= left)
                if feas.any():
                    k = _pd_argmin(
                        perm,
                        cn_c[i],
                        acc_c[i],
                        ln_c[i],
                        np.where(feas[perm], 0.0, np.inf),
                        lam,
                        mu,
                        nu,
                    )
                else:
                    reason = fallback
                    # left is set only when there is a budget (> 0, validated).
                    k = fallback_choice(
                        ctx, est, i, canon, floors[i] + margin_f, left, (budget or 0.0) / (n_w or 1)
                    )
            elif not any_hard[i]:
                reason = fallback
                k = fallback_choice(ctx, est, i, canon, floors[i] + margin_f, None, None)
            elif mu == 0.0 and nu == 0.0:
                k = k_green[i]
            else:
                dl, dm, dn = abs(lam - lam0_l[i]), abs(mu - mu0_l[i]), abs(nu - nu0_l[i])
                if (dl == 0.0 and dm == 0.0 and dn == 0.0) or (
                    dl * cn_rng_l[i] + dm * acc_rng_l[i] + dn * ln_rng_l[i] + 2.0 * scale_l[i]
                    < margin[i]
                ):
                    k = k_guess[i]
                else:
                    k = _pd_argmin(perm, cn_c[i], acc_c[i], ln_c[i], pen_all[i], lam, mu, nu)
            co2_k = co2.item(i, k)
            # Projected dual steps (see the class docstring).
            lam_a = lam
            if budget is not None:
                lam_a = lam + eta_l * (co2_k - budget / (n_w or 1)) / c_ref
                lam_a = 0.0 if lam_a < 0.0 else (lam_max if lam_a > lam_max else lam_a)
            # mu counts the chosen scoring accuracy plus the correctness surprise of the
            # tenant's completions since its last decision on this dataset (fold_feedback).
            acc_k = acc.item(i, k)
            sur = mw.surprise
            fb = sur.pop(ds, 0.0) if sur else 0.0
            if fb:
                acc_k += fb
            wd = mw.warmup
            if warmup and wd and ds in wd:
                wu = warmup_take(wd, ds)
                # Boosted step, folded into the counted accuracy so that the record's
                # accuracy_est carries it (record replay holds no warm-up state: no boost).
                tgt = tgts[i]
                p_k = acc.item(i, k)
                fb = tgt - (1.0 + wu_gain * min(wu, wu_n) / wu_n) * (tgt - acc_k) - p_k
                acc_k = p_k + fb
            mu_a = mu + eta_m * (tgts[i] - acc_k)
            mu_a = 0.0 if mu_a < 0.0 else (mu_max if mu_a > mu_max else mu_a)
            nu_a = nu + eta_n * (lat.item(i, k) / caps[i] - target_ratio)
            nu_a = 0.0 if nu_a < 0.0 else (nu_max if nu_a > nu_max else nu_a)
            w.lam, w.nu = lam_a, nu_a
            mw.mu[ds] = mu_a
            if pool is not None:
                pool.seq += 1
            w.charge(ts, co2_k, in_win)
            # tuple.__new__ skips the NamedTuple's Python-level __new__ (hot path).
            append(
                new_tuple(
                    Decision,
                    (
                        shared,
                        i,
                        k,
                        reason,
                        lam,
                        mu,
                        nu,
                        lam_a,
                        mu_a,
                        nu_a,
                        budget,
                        left,
                        spend0,
                        count0,
                        in_win,
                        w.seq,
                        fb,
                        scope_name,
                        0 if pool is None else pool.seq,
                        None,
                    ),
                )
            )
        return book.frozen(), out


# --- variants ------------------------------------------------------------------------------------
def _fixed_choices(
    ctx: RoutingContext, est: Estimates, canon: Canon, feas: BoolArray, primary: FloatArray
) -> tuple[list[int], list[str]]:
    """argmin of ``primary`` over ``feas`` per row (canonical tie-break); fallback rows use
    the least-violation rule."""
    perm = canon.perm
    k_all = perm[np.argmin(np.where(feas[:, perm], primary[:, perm], np.inf), axis=1)].tolist()
    any_f = np.any(feas, axis=1).tolist()
    reasons = [Reason.OPTIMAL] * est.n
    margin = ctx.config.floor_margin
    for i in range(est.n):
        if not any_f[i]:
            reasons[i] = Reason.INFEASIBLE_FALLBACK
            k_all[i] = fallback_choice(ctx, est, i, canon, float(est.floor[i]) + margin, None, None)
    return k_all, reasons


class _MinCarbonOverFilter(PolicyBase):
    """Least CO2 over a per-request feasible mask (no duals); fallback if the mask is empty."""

    name = "min-carbon-over-filter"

    def feasible(self, cfg: PolicyConfig, est: Estimates) -> BoolArray:
        raise NotImplementedError

    def decide_estimates(
        self,
        ctx: RoutingContext,
        tenant_states: Mapping[str, TenantState],
        est: Estimates,
    ) -> tuple[dict[str, TenantState], list[Decision]]:
        feas = self.feasible(ctx.config, est)
        k_all, reasons = _fixed_choices(ctx, est, Canon(ctx), feas, est.co2_g)

        def step(i: int, w: TenantWork) -> tuple[int, str]:
            return k_all[i], reasons[i]

        return run_batch(self.name, ctx, est, tenant_states, feas, step)


class GarFixed(_MinCarbonOverFilter):
    """Static floor filter (acc >= F_i + floor_margin) and SLO filter, then least CO2."""

    name = "gar-fixed"

    def feasible(self, cfg: PolicyConfig, est: Estimates) -> BoolArray:
        out: BoolArray = (
            est.eligible
            & est.latency_ok
            & (est.accuracy >= (est.floor + cfg.floor_margin)[:, None])
        )
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
    of target it may go below it, so the average converges to F at least carbon. The record's
    feasible set is the SLO-feasible set (the threshold depends on the deficit).
    """

    name = "gar-target"
    rederivable_from_record = False  # the threshold depends on the deficit, not in the record

    def decide_estimates(
        self,
        ctx: RoutingContext,
        tenant_states: Mapping[str, TenantState],
        est: Estimates,
    ) -> tuple[dict[str, TenantState], list[Decision]]:
        canon = Canon(ctx)
        perm = canon.perm
        base = est.eligible & est.latency_ok
        base_c = base[:, perm]
        acc_c = est.accuracy[:, perm]
        co2_c = est.co2_g[:, perm]
        best = np.where(base, est.accuracy, -np.inf).max(axis=1).tolist()
        any_b = np.any(base, axis=1).tolist()
        datasets = ctx.catalog.datasets
        ds_idx = est.dataset_idx.tolist()
        floors = est.floor.tolist()

        def step(i: int, w: TenantWork) -> tuple[int, str]:
            f = floors[i]
            if not any_b[i]:
                return fallback_choice(
                    ctx, est, i, canon, f, None, None
                ), Reason.INFEASIBLE_FALLBACK
            ds = datasets[ds_idx[i]]
            s = w.deficit.get(ds, 0.0)
            thr = min(f + s, best[i])
            ok_c = base_c[i] & (acc_c[i] >= thr)
            k = canon.argmin(np.where(ok_c, co2_c[i], np.inf))
            w.deficit[ds] = min(max(s + f - est.accuracy.item(i, k), -DEFICIT_BOUND), DEFICIT_BOUND)
            return k, Reason.OPTIMAL

        return run_batch(self.name, ctx, est, tenant_states, base, step, track_deficit=True)


GAR_POLICIES: tuple[type[PolicyBase], ...] = (GarPD, GarFixed, GarEps, GarTarget)
