"""Hindsight oracles (evaluation only): the limits every online policy is compared to.

``oracle_lp`` solves the fractional routing problem over a whole trace with scipy's HiGHS:

    min   sum_ik c_ik x_ik                                   (total CO2, future intensities)
    s.t.  sum_k x_ik = 1                      for every request i
          x_ik = 0                            where k is not allowed for i (SLO/eligibility)
          sum_{i in g} a_ik x_ik >= F_g n_g   for every floor group g (e.g. dataset)
          sum_{i in (t, w)} c_ik x_ik <= B_t  for every tenant t and budget window w
          0 <= x_ik <= 1

Windows are ``[e - window_ms, e)`` for ends ``e`` every ``stride_ms`` (default window/4)
covering the trace: the rolling budget checked at ``stride`` resolution. Floors are met on
average over the whole trace per group. If the constraints cannot all hold, non-negative slacks
(floor shortfall in accuracy x requests, budget overspend in g) enter the objective with a
large penalty, so the oracle always answers and reports what it had to violate.

``oracle_perfect`` is the same LP with ``a_ik`` = the query's *true* correctness (0/1) of
candidate k's model: the limit with perfect knowledge of which model answers which query.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from streams.core.errors import CoreError
from streams.core.frontier import efficient_candidates

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

SLACK_PENALTY = 1e4


class OracleError(CoreError):
    """Inputs of an oracle are inconsistent, or HiGHS failed."""


@dataclass(frozen=True, eq=False)
class OracleResult:
    x: FloatArray  # (N, K) fractional assignment, rows sum to 1
    choice: IntArray  # (N,) argmax_k x_ik (a rounded, integral reading of x)
    co2_g: float  # sum_ik c_ik x_ik
    accuracy_by_group: FloatArray  # (G,) expected accuracy per floor group under x
    floor_shortfall: FloatArray  # (G [+ pools],) slack used: accuracy x requests below floor
    budget_overspend_g: FloatArray  # (W,) slack used per budget window
    windows: tuple[tuple[int, int, int], ...]  # (tenant index, start_ms, end_ms) per window
    status: str
    floor_dual: FloatArray = field(default_factory=lambda: np.zeros(0))
    """(G [+ pools],) shadow price of each floor (then each pool) constraint: the CO2 (g) one
    more unit of accuracy x requests in the group would cost (HiGHS marginals, >= 0)."""

    @property
    def feasible(self) -> bool:
        return bool(
            self.floor_shortfall.max(initial=0.0) <= 1e-7
            and self.budget_overspend_g.max(initial=0.0) <= 1e-7
        )


def _windows(
    tenant: IntArray, ts_ms: IntArray, n_tenants: int, window_ms: int, stride_ms: int
) -> list[tuple[int, int, int, IntArray]]:
    out: list[tuple[int, int, int, IntArray]] = []
    for t in range(n_tenants):
        rows = np.flatnonzero(tenant == t)
        if rows.size == 0:
            continue
        by_ts = np.argsort(ts_ms[rows], kind="stable")
        rows, ts = rows[by_ts], ts_ms[rows][by_ts]
        lo, hi = int(ts[0]), int(ts[-1])
        # Window ends lo + stride, lo + 2 stride, ... up to the first end past the last request.
        ends = lo + stride_ms * np.arange(1, (hi - lo) // stride_ms + 2, dtype=np.int64)
        first = np.searchsorted(ts, ends - window_ms, side="left")
        last = np.searchsorted(ts, ends, side="left")
        for end, i, j in zip(ends.tolist(), first.tolist(), last.tolist(), strict=True):
            if j > i:
                out.append((t, end - window_ms, end, rows[i:j]))
    return out


# Long on purpose: one LP whose constraint blocks (floors, pools, caps, budget windows) are
# stacked in the order the variable and row indexing below assumes; read it top to bottom.
def oracle_lp(
    co2_g: FloatArray,
    accuracy: FloatArray,
    allowed: BoolArray | None,
    floor_group: IntArray,
    floors: FloatArray,
    *,
    tenant: IntArray | None = None,
    ts_ms: IntArray | None = None,
    budgets_g: FloatArray | None = None,
    window_ms: int | None = None,
    stride_ms: int | None = None,
    pool_group: IntArray | None = None,
    pool_floor: FloatArray | None = None,
    group_cap: FloatArray | None = None,
    reduce: bool = True,
) -> OracleResult:
    """Hindsight fractional optimum.

    co2_g, accuracy: (N, K) per request per candidate (CO2 at the request's *actual* time;
    expected accuracy). allowed: (N, K) mask (SLO, allow/deny); a request with no allowed
    candidate may use all of them. floor_group: (N,) group index per request (e.g. dataset);
    floors: (G,) floor per group. Budgets (optional): tenant (N,) index, ts_ms (N,),
    budgets_g (T,) per tenant (np.inf = none), window_ms and stride_ms. Pooled floors
    (optional): pool_group (N,) index (e.g. the event-time day) and pool_floor (N,) per request;
    each pool must meet sum_{i in p} a_i x_i >= sum_{i in p} pool_floor_i (its request-weighted
    floor, the evaluator's per-window rule) on top of the per-group floors. group_cap
    (optional, (G,)): each group's average accuracy must also stay <= its cap (e.g. what is
    reachable), so a pooled floor's surplus goes to other groups. reduce (default): solve over
    each request's efficient candidates only (``streams.core.frontier``: the same optimal value
    and floor prices; skipped when a cap is given).
    """
    # scipy is imported here so that importing streams.core stays light for the worker.
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, csr_matrix, vstack

    c = np.asarray(co2_g, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    if c.ndim != 2 or c.shape != a.shape:
        raise OracleError("co2_g and accuracy must be (N, K) arrays of the same shape")
    n, k = c.shape
    if n == 0:
        raise OracleError("empty trace")
    if not (np.isfinite(c).all() and np.isfinite(a).all()):
        raise OracleError("co2_g and accuracy must be finite")
    ok = np.ones((n, k), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    ok = ok | ~ok.any(axis=1, keepdims=True)
    # The slack penalties and the scale come from every allowed candidate, so that they are
    # the same with or without the reduction (infeasible instances trade slacks at their ratio).
    cmax = float(c[ok].max(initial=0.0))
    scale = float(np.abs(c[ok]).max(initial=0.0)) or 1.0
    if reduce and group_cap is None:
        ok = efficient_candidates(c, a, ok)
    grp = np.asarray(floor_group, dtype=np.int64)
    fl = np.asarray(floors, dtype=np.float64)
    if grp.shape != (n,) or (grp.size and (grp.min() < 0 or grp.max() >= fl.size)):
        raise OracleError("floor_group must be (N,) indices into floors")
    rows, cols = np.nonzero(ok)
    nv = rows.size
    var_of = np.full((n, k), -1, dtype=np.int64)
    var_of[rows, cols] = np.arange(nv)
    cv, av = c[rows, cols], a[rows, cols]
    # HiGHS's tolerances are absolute (1e-7): with costs of ~1e-4 g per request it stopped
    # measurably short of the optimum (2e-4 relative, found by the reduction's tests). So the
    # LP is solved in units of the largest cost: objective and budget rows divided by scale.
    cs = cv / scale
    g_count = fl.size
    # Budget windows.
    wins: list[tuple[int, int, int, IntArray]] = []
    if budgets_g is not None:
        if tenant is None or ts_ms is None or window_ms is None:
            raise OracleError("budgets need tenant, ts_ms and window_ms")
        b = np.asarray(budgets_g, dtype=np.float64)
        ten = np.asarray(tenant, dtype=np.int64)
        stride = stride_ms or max(window_ms // 4, 1)
        wins = [
            w
            for w in _windows(ten, np.asarray(ts_ms, dtype=np.int64), b.size, window_ms, stride)
            if np.isfinite(b[w[0]])
        ]
    n_w = len(wins)
    n_p = 0
    if pool_group is not None:
        pg = np.asarray(pool_group, dtype=np.int64)
        pf = np.asarray(pool_floor, dtype=np.float64)
        if pg.shape != (n,) or pf.shape != (n,) or (pg.size and pg.min() < 0):
            raise OracleError("pool_group and pool_floor must be (N,), pool_group >= 0")
        n_p = int(pg.max()) + 1
    n_cols = nv + g_count + n_w + n_p  # x, floor slacks, budget slacks, pool slacks
    # Equalities: each request's row sums to 1.
    a_eq = csr_matrix((np.ones(nv), (rows, np.arange(nv))), shape=(n, n_cols))
    b_eq = np.ones(n)
    # Floors: -sum a x - s_g <= -F_g n_g.
    ub_blocks = [
        coo_matrix((-av, (grp[rows], np.arange(nv))), shape=(g_count, n_cols)),
        coo_matrix(
            (-np.ones(g_count), (np.arange(g_count), nv + np.arange(g_count))),
            shape=(g_count, n_cols),
        ),
    ]
    counts = np.bincount(grp, minlength=g_count).astype(np.float64)
    b_ub_parts = [-fl * counts]
    if n_w:
        r_idx, c_idx, vals = [], [], []
        for j, (_t, _s, _e, sel) in enumerate(wins):
            v = var_of[sel].ravel()
            v = v[v >= 0]
            r_idx.append(np.full(v.size, j))
            c_idx.append(v)
            vals.append(cs[v])
        ub_blocks.append(
            coo_matrix(
                (np.concatenate(vals), (np.concatenate(r_idx), np.concatenate(c_idx))),
                shape=(n_w, n_cols),
            )
        )
        ub_blocks.append(
            coo_matrix(
                (-np.ones(n_w), (np.arange(n_w), nv + g_count + np.arange(n_w))),
                shape=(n_w, n_cols),
            )
        )
        b = np.asarray(budgets_g, dtype=np.float64)
        b_ub_parts.append(np.asarray([b[w[0]] for w in wins]) / scale)
    blocks = [(ub_blocks[0] + ub_blocks[1]).tocsr()]
    if n_w:
        blocks.append((ub_blocks[2] + ub_blocks[3]).tocsr())
    if n_p:
        # Pools: -sum_{i in p} a x - s_p <= -sum_{i in p} pool_floor_i.
        blocks.append(
            (
                coo_matrix((-av, (pg[rows], np.arange(nv))), shape=(n_p, n_cols))
                + coo_matrix(
                    (-np.ones(n_p), (np.arange(n_p), nv + g_count + n_w + np.arange(n_p))),
                    shape=(n_p, n_cols),
                )
            ).tocsr()
        )
        b_ub_parts.append(-np.bincount(pg, weights=pf, minlength=n_p).astype(np.float64))
    if group_cap is not None:
        # Caps: sum_{i in g} a x <= cap_g n_g (no slack: a cap is never forced, the floor's
        # slack absorbs a cap below the floor).
        capv = np.asarray(group_cap, dtype=np.float64)
        if capv.shape != (g_count,):
            raise OracleError("group_cap must be (G,)")
        blocks.append(coo_matrix((av, (grp[rows], np.arange(nv))), shape=(g_count, n_cols)).tocsr())
        b_ub_parts.append(np.maximum(capv, fl) * counts)
    a_ub = vstack(blocks).tocsr()
    b_ub = np.concatenate(b_ub_parts)
    # Penalties: a unit of floor shortfall costs more than routing any request anywhere.
    # (In scaled units: a floor slack costs SLACK_PENALTY x the largest cost, a budget slack
    # SLACK_PENALTY per g of overspend, i.e. per 1/scale scaled unit.)
    pen_floor = SLACK_PENALTY * max(cmax, 1e-9) / scale
    pen_budget = SLACK_PENALTY
    cost = np.concatenate(
        [cs, np.full(g_count, pen_floor), np.full(n_w, pen_budget), np.full(n_p, pen_floor)]
    )
    bounds = np.zeros((n_cols, 2))
    bounds[:, 1] = np.inf
    bounds[:nv, 1] = 1.0
    # scipy-stubs only list dense arrays; HiGHS takes sparse matrices (documented in scipy).
    res = linprog(
        cost,
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=a_eq,
        b_eq=b_eq,  # type: ignore[call-overload]
        bounds=bounds,
        method="highs",
    )
    if res.x is None:
        raise OracleError(f"HiGHS failed: {res.message}")
    xv = np.clip(res.x[:nv], 0.0, 1.0)
    marg = np.asarray(res.ineqlin.marginals, dtype=np.float64)
    # Rows: floors, then budget windows, then pools; b_ub holds -F n, so the price is -marginal.
    dual = -scale * np.concatenate([marg[:g_count], marg[g_count + n_w : g_count + n_w + n_p]])
    x = np.zeros((n, k))
    x[rows, cols] = xv
    acc_g = np.bincount(grp, weights=(a * x).sum(axis=1), minlength=g_count) / np.maximum(
        counts, 1.0
    )
    return OracleResult(
        x=x,
        choice=x.argmax(axis=1).astype(np.int64),
        co2_g=float((c * x).sum()),
        accuracy_by_group=acc_g,
        floor_shortfall=np.concatenate([res.x[nv : nv + g_count], res.x[nv + g_count + n_w :]]),
        budget_overspend_g=scale * np.asarray(res.x[nv + g_count : nv + g_count + n_w]),
        windows=tuple((w[0], w[1], w[2]) for w in wins),
        status=str(res.message),
        floor_dual=np.maximum(dual, 0.0),
    )


def oracle_perfect(
    co2_g: FloatArray,
    correct: npt.NDArray[np.bool_] | FloatArray,
    allowed: BoolArray | None,
    floor_group: IntArray,
    floors: FloatArray,
    *,
    tenant: IntArray | None = None,
    ts_ms: IntArray | None = None,
    budgets_g: FloatArray | None = None,
    window_ms: int | None = None,
    stride_ms: int | None = None,
    pool_group: IntArray | None = None,
    pool_floor: FloatArray | None = None,
    reduce: bool = True,
) -> OracleResult:
    """``oracle_lp`` with each query's true 0/1 correctness per candidate (same keywords)."""
    corr = np.asarray(correct, dtype=np.float64)
    if not np.isin(corr, (0.0, 1.0)).all():
        raise OracleError("correct must be 0/1")
    return oracle_lp(
        co2_g,
        corr,
        allowed,
        floor_group,
        floors,
        tenant=tenant,
        ts_ms=ts_ms,
        budgets_g=budgets_g,
        window_ms=window_ms,
        stride_ms=stride_ms,
        pool_group=pool_group,
        pool_floor=pool_floor,
        reduce=reduce,
    )


ORACLES = {"oracle-lp": oracle_lp, "oracle-perfect": oracle_perfect}
