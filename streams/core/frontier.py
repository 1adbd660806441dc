"""Exact column reduction for the hindsight LP: per request, only its efficient candidates.

In ``oracle_lp`` a candidate k of request i enters the LP through (c_ik, a_ik) only: cost c_ik
in the objective and in every budget row (coefficient +c_ik, rows ``<=``), accuracy a_ik in
every floor and pooled-floor row (rows ``sum a x >= ...``), and 1 in the request's row
``sum_k x_ik = 1``. Call the points P_i = {(c_ik, a_ik) : k allowed for i}.

**Claim.** Some optimal x puts weight only on the *efficient vertices* of P_i: the vertices of
the upper-left boundary of conv(P_i), i.e. the points that minimise c - lambda a for some
lambda in [0, inf] (at lambda = 0 the cheapest point with the highest accuracy among the
cheapest, at lambda = inf the most accurate point with the lowest cost among those).

**Proof.** Let E_i be those vertices, sorted by c; consecutive ones span the concave,
increasing frontier a = f_i(c) on [c_min, c_max], the smallest concave function above
every point of P_i on that interval. For any point (c_k, a_k) of P_i there is a convex
combination sum_j theta_j e_j of at most two points of E_i with cost <= c_k and accuracy >=
a_k: if c_k >= c_max take the last vertex (a_k <= a_max); otherwise take the frontier at c_k,
f_i(c_k) >= a_k (its two neighbouring vertices, cost exactly c_k). Move x_ik's weight onto
those vertices in proportions theta. The request's row still sums to 1; the objective and
every budget row change by x_ik (sum theta_j c_j - c_k) <= 0; every floor and pool row changes
by x_ik (sum theta_j a_j - a_k) >= 0. Slacks stay feasible and no more costly, so the new x
is feasible with an objective no larger: it is optimal too. Repeating for every (i, k) gives
an optimum on E_i alone, so the LP restricted to E_i columns has the same optimal value.

The duals carry over as well: a column's reduced cost is affine in (c, a), with a
non-negative weight on c and a non-positive weight on a (u_i enters every column of row i with
the same coefficient), so a dominated column's reduced cost is >= the theta-combination of
the kept columns' reduced costs, which are >= 0: an optimal dual of the reduced LP is dual
feasible, hence optimal, for the full LP (the floor prices are unchanged).

The claim needs every accuracy row to *reward* accuracy; an accuracy cap (``group_cap``, rows
``sum a x <= cap``) breaks it, so ``oracle_lp`` does not reduce when a cap is given.

Computation (vectorised over requests): sort each request's candidates by accuracy
descending then cost ascending; the Pareto points are those cheaper than every earlier one;
then a monotone-chain upper hull over the (few) Pareto points, popping collinear ones (each is
a convex combination of its neighbours). oracle-lp's accuracy depends only on (model,
dataset), so a request keeps at most one candidate per model (its cheapest zone) and usually
2-4; oracle-perfect's 0/1 accuracies keep at most 2.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def efficient_candidates(co2_g: FloatArray, accuracy: FloatArray, allowed: BoolArray) -> BoolArray:
    """(N, K) mask of each row's efficient vertices among its allowed candidates (module doc).

    Exactly one of several identical (cost, accuracy) points is kept. A row with no allowed
    candidate keeps none (callers widen such rows first)."""
    c = np.where(allowed, np.asarray(co2_g, dtype=np.float64), np.inf)
    a = np.where(allowed, np.asarray(accuracy, dtype=np.float64), -np.inf)
    n, _k = c.shape
    if n == 0:
        return np.zeros_like(allowed, dtype=bool)
    order = np.lexsort((c, -a), axis=1)  # accuracy descending, then cost ascending
    cs = np.take_along_axis(c, order, axis=1)
    a_s = np.take_along_axis(a, order, axis=1)
    prev_min = np.minimum.accumulate(cs, axis=1)
    prev_min = np.concatenate([np.full((n, 1), np.inf), prev_min[:, :-1]], axis=1)
    pareto = (cs < prev_min) & np.isfinite(cs)
    # Compact each row's Pareto points, reversed into cost-ascending (and accuracy-ascending)
    # order: position 0 is the cheapest.
    count = pareto.sum(axis=1)
    width = int(count.max(initial=0))
    rows, pos = np.nonzero(pareto)
    slot = count[rows] - 1 - (np.cumsum(pareto, axis=1)[rows, pos] - 1)
    pc = np.zeros((n, width))
    pa = np.zeros((n, width))
    pk = np.zeros((n, width), dtype=np.int64)
    pc[rows, slot] = cs[rows, pos]
    pa[rows, slot] = a_s[rows, pos]
    pk[rows, slot] = order[rows, pos]
    # Monotone chain (upper hull of a over c), one stack per row.
    stack = np.zeros((n, width), dtype=np.int64)
    height = np.zeros(n, dtype=np.int64)
    every = np.arange(n)
    for j in range(width):
        active = count > j
        while True:
            can = active & (height >= 2)
            if not can.any():
                break
            r = stack[every, np.maximum(height - 2, 0)]
            q = stack[every, np.maximum(height - 1, 0)]
            rc, ra = pc[every, r], pa[every, r]
            cross = (pc[every, q] - rc) * (pa[:, j] - ra) - (pa[every, q] - ra) * (pc[:, j] - rc)
            pop = can & (cross >= 0.0)  # q on or below the chord r -> j: not a vertex
            if not pop.any():
                break
            height[pop] -= 1
        stack[active, height[active]] = j
        height[active] += 1
    keep = np.zeros(c.shape, dtype=bool)
    depth = np.arange(width)[None, :] < height[:, None]
    hull_rows, hull_pos = np.nonzero(depth)
    keep[hull_rows, pk[hull_rows, stack[hull_rows, hull_pos]]] = True
    return keep
