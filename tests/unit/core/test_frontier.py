"""The hindsight LP's column reduction (``streams.core.frontier``) is exact."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from streams.core.frontier import efficient_candidates
from streams.core.oracle import SLACK_PENALTY, OracleResult, _windows, oracle_lp, oracle_perfect


def _objective(res: OracleResult, c: np.ndarray) -> float:
    """The LP's full objective: CO2 plus the penalised slacks (floor and pool, budget)."""
    pen_floor = SLACK_PENALTY * max(float(c.max()), 1e-9)
    return (
        res.co2_g
        + pen_floor * float(res.floor_shortfall.sum())
        + SLACK_PENALTY * float(res.budget_overspend_g.sum())
    )


def _instance(rng: np.random.Generator, budgets: bool, pools: bool) -> dict[str, Any]:
    """A small random oracle-lp instance: accuracy depends on (model, group) only, costs per
    (request, candidate), random allowed masks, some rounded values (ties, collinear points)."""
    n, k, g, m = (int(rng.integers(lo, hi)) for lo, hi in ((1, 40), (1, 10), (1, 4), (1, 5)))
    model = rng.integers(0, m, size=k)
    grp = rng.integers(0, g, size=n)
    acc_gm = rng.random((g, m))
    c = rng.random((n, k)) * float(rng.choice([1e-4, 1.0]))
    if rng.random() < 0.4:
        acc_gm = np.round(acc_gm, 1)
        c = np.round(c, 5)
    kw: dict[str, Any] = {}
    if budgets:
        kw |= {
            "tenant": rng.integers(0, 2, size=n),
            "ts_ms": np.sort(rng.integers(0, 10_000, size=n)),
            "budgets_g": np.array([float(rng.random() * c.mean() * n / 3), np.inf]),
            "window_ms": 3_000,
        }
    if pools:
        kw |= {"pool_group": rng.integers(0, 3, size=n), "pool_floor": rng.random(n) * 0.8}
    return {
        "co2_g": c,
        "accuracy": acc_gm[grp][:, model],
        "allowed": rng.random((n, k)) < 0.7,
        "floor_group": grp,
        "floors": rng.random(g) * 0.9,
        **kw,
    }


@pytest.mark.parametrize(
    ("budgets", "pools"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_reduced_lp_has_the_unreduced_optimum(budgets: bool, pools: bool) -> None:
    rng = np.random.default_rng(17 + 2 * budgets + pools)
    reduced_somewhere = 0
    for _ in range(60):
        inst = _instance(rng, budgets, pools)
        c = inst["co2_g"]
        full = oracle_lp(**inst, reduce=False)
        red = oracle_lp(**inst)
        assert _objective(red, c) == pytest.approx(_objective(full, c), rel=1e-9, abs=1e-12)
        assert red.feasible == full.feasible
        # The reduced optimum is a feasible point of the full problem: rows sum to 1 and it
        # only uses allowed candidates (or any, for a request with none allowed).
        np.testing.assert_allclose(red.x.sum(axis=1), 1.0, atol=1e-9)
        ok = inst["allowed"] | ~inst["allowed"].any(axis=1, keepdims=True)
        assert (red.x[~ok] == 0).all()
        reduced_somewhere += int(np.count_nonzero(red.x > 1e-9) < ok.sum())
        correct = (rng.random(c.shape) < 0.6).astype(np.float64)
        inst_p = {k: v for k, v in inst.items() if k != "accuracy"}
        full_p = oracle_perfect(correct=correct, **inst_p, reduce=False)
        red_p = oracle_perfect(correct=correct, **inst_p)
        assert _objective(red_p, c) == pytest.approx(_objective(full_p, c), rel=1e-9, abs=1e-12)
    assert reduced_somewhere > 30  # the instances do exercise the reduction


def _dominated_by_kept(
    c: np.ndarray, a: np.ndarray, keep: np.ndarray, j: int, eps: float = 1e-12
) -> bool:
    """Some convex combination of the kept points (at most two suffice) has cost <= c_j + eps
    and accuracy >= a_j - eps."""
    kc, ka = c[keep], a[keep]
    if ((kc <= c[j] + eps) & (ka >= a[j] - eps)).any():
        return True
    for p in range(kc.size):
        for q in range(kc.size):
            if kc[p] < c[j] < kc[q]:
                t = (c[j] - kc[p]) / (kc[q] - kc[p])
                if (1 - t) * ka[p] + t * ka[q] >= a[j] - eps:
                    return True
    return False


def test_efficient_candidates_keeps_exactly_the_frontier_vertices() -> None:
    rng = np.random.default_rng(5)
    n, k = 300, 12
    c = np.round(rng.random((n, k)), 2)
    a = np.round(rng.random((n, k)), 2)
    allowed = rng.random((n, k)) < 0.8
    allowed[:, 0] = True
    keep = efficient_candidates(c, a, allowed)
    assert not (keep & ~allowed).any()
    for i in range(n):
        cols = np.flatnonzero(allowed[i])
        kept = keep[i, cols]
        ci, ai = c[i, cols], a[i, cols]
        assert kept.any()
        # Every dropped candidate is dominated by a convex combination of kept ones ...
        for j in np.flatnonzero(~kept):
            assert _dominated_by_kept(ci, ai, kept, int(j))
        # ... and no kept one is, beyond rounding (each is a vertex: dropping it would lose
        # the optimum for some price of accuracy; a point collinear with its neighbours up to
        # rounding may stay, which costs nothing).
        for j in np.flatnonzero(kept):
            others = kept.copy()
            others[j] = False
            assert not others.any() or not _dominated_by_kept(ci, ai, others, int(j), -1e-9)


def test_efficient_candidates_on_zero_one_accuracy_keeps_at_most_two() -> None:
    c = np.array([[3.0, 1.0, 2.0, 0.5], [1.0, 2.0, 3.0, 4.0]])
    a = np.array([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    keep = efficient_candidates(c, a, np.ones_like(c, dtype=bool))
    # Row 0: the cheapest correct one (1.0) and the cheaper incorrect one (0.5).
    assert keep[0].tolist() == [False, True, False, True]
    # Row 1: the cheapest candidate is also correct: it alone.
    assert keep[1].tolist() == [True, False, False, False]


def test_budget_windows_match_their_definition() -> None:
    rng = np.random.default_rng(2)
    n = 400
    tenant = rng.integers(0, 3, size=n)
    ts = rng.integers(0, 50_000, size=n)  # not sorted: the windows sort per tenant
    window, stride = 6_000, 1_500
    got = {(t, s, e): set(sel.tolist()) for t, s, e, sel in _windows(tenant, ts, 3, window, stride)}
    want: dict[tuple[int, int, int], set[int]] = {}
    for t in range(3):
        rows = np.flatnonzero(tenant == t)
        lo, hi = int(ts[rows].min()), int(ts[rows].max())
        end = lo + stride
        while True:
            sel = rows[(ts[rows] >= end - window) & (ts[rows] < end)]
            if sel.size:
                want[(t, end - window, end)] = set(sel.tolist())
            if end > hi:
                break
            end += stride
    assert got == want
