"""Per-dataset floor tuning from a calibration LP (no data of the evaluated trace).

A learning phase for gar-pd, the way online primal-dual methods are warm-started: on the
*calibration half* of the questions (the half that already builds the catalog priors) and the
carbon data of the period just *before* the evaluated one, build a calibration trace with the
same generator (another seed), and solve the hindsight LP there twice:

1. **Where the margin goes.** oracle-lp at the per-dataset floors F_d that must also hold every
   daily window, pooled over datasets, at F + ``pool_margin``: the LP puts the margin where
   accuracy is cheapest. Its expected accuracy per dataset A_d gives the router's target
   T_d = max(F_d, A_d) (``PolicyConfig.floor_targets``); gar-pd then aims mu at
   T_d + ``floor_margin`` (a small uniform margin against each dataset's own noise).
2. **The starting price.** oracle-lp with floors T_d + floor_margin per dataset (no pools); the
   shadow price y_d of dataset d's floor (HiGHS marginal, g CO2 per unit of accuracy x
   requests) is the LP's price of accuracy on d. gar-pd's score is c/c_ref - mu a, i.e.
   c - (mu c_ref) a, so its mu on the same scale is y_d / c_ref
   (``PolicyConfig.mu_init_by_dataset``): each (tenant, dataset) stream starts at its price
   instead of paying (mu* - mu0) / eta_mu answers below the floor while mu climbs.

Everything here is computed before the evaluated trace is looked at: the calibration trace
draws only calibration-half questions, its own arrivals and noise (seed + CALIBRATION_SEED),
and the intensities of the preceding period.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from streams.core import RoutingContext
from streams.data.catalog_builder import calibration_mask
from streams.eval.oracles import run_oracle
from streams.eval.scenario_types import Calibration, Scenario
from streams.eval.trace import DAY_MS, build_trace
from streams.eval.world import World

HEADROOM_SE = 2.0
"""A target stays this many standard errors under the best model's calibration accuracy."""
CALIBRATION_SEED = 1_000_003
"""Added to the scenario seed: the calibration trace shares no noise with the evaluated one."""


def reachable_accuracy(scn: Scenario, headroom_se: float) -> dict[str, float]:
    """Per dataset: the best pool model's calibration-half accuracy minus ``headroom_se``
    standard errors of that estimate. A target above it may be out of reach on other
    questions (the calibration half is a sample): mu would wind up chasing it."""
    data = scn.data
    calib = calibration_mask(data)
    out: dict[str, float] = {}
    for d, name in enumerate(data.datasets):
        best = None
        for m in scn.catalog.model_names:
            rows = calib & (data.dataset_idx == d) & (data.correct[:, data.model_index(m)] >= 0)
            if rows.any():
                p = float(data.correct[rows, data.model_index(m)].mean())
                se = math.sqrt(p * (1.0 - p) / int(rows.sum()))
                cap = p - headroom_se * se
                best = cap if best is None else max(best, cap)
        if best is not None:
            out[name] = best
    return out


def calibrate(
    scn: Scenario, pool_margin: float, floor_margin: float, headroom_se: float = HEADROOM_SE
) -> Calibration:
    """The calibration of ``scn`` (see the module docstring). Raises ValueError if the carbon
    data does not cover the preceding period."""
    s = scn.settings
    opts = scn.trace.options
    days = opts.days
    start = opts.start_ms - int(days * DAY_MS)
    for z in scn.zones.values():
        if start < z.ts_ms[0]:
            raise ValueError(
                f"zone {z.zone}: carbon data starts {np.datetime64(int(z.ts_ms[0]), 'ms')}, "
                f"after the calibration period {np.datetime64(start, 'ms')}"
            )
    seed = s.seed + CALIBRATION_SEED
    trace = build_trace(
        scn.data, scn.catalog,
        replace(opts, start_ms=start, seed=seed, use_calibration_half=True),
    )  # fmt: skip
    world = World(scn.catalog, trace, scn.zones, scn.built.mappings)
    cal = replace(scn, trace=trace, world=world)
    everything = world.all_outcomes()
    names = trace.dataset_names
    floors = {d: scn.floors.get(d, 0.0) for d in names}
    caps = reachable_accuracy(scn, headroom_se)
    pooled = run_oracle(
        "oracle-lp",
        cal,
        everything,
        window_floors=True,
        pool_margin=pool_margin,
        group_cap=np.array([caps.get(d, 1.0) - floor_margin for d in names]),
    )
    acc = dict(zip(names, pooled.result.accuracy_by_group.tolist(), strict=True))
    targets = {d: round(max(floors[d], acc[d]), 4) for d in names}
    at_targets = replace(cal, floors={d: min(targets[d] + floor_margin, 1.0) for d in names})
    priced = run_oracle("oracle-lp", at_targets, everything)
    dual = dict(zip(names, priced.result.floor_dual[: len(names)].tolist(), strict=True))
    # A target the calibration data cannot reach has no price (the LP's dual is its slack
    # penalty): such a dataset keeps the warm start.
    short = priced.result.floor_shortfall[: len(names)].tolist()
    unpriced = [d for d, sh in zip(names, short, strict=True) if sh > 1e-7]
    c_ref = RoutingContext.build(scn.catalog, scn.config).carbon_ref_g
    return Calibration(
        start_ms=start, days=days, n_requests=len(trace), seed=seed, pool_margin=pool_margin,
        floor_margin=floor_margin, carbon_ref_g=c_ref,
        accuracy_pooled={d: round(v, 4) for d, v in acc.items()}, floor_targets=targets,
        floor_dual_g=dual,
        mu_init_by_dataset={d: round(v / c_ref, 4) for d, v in dual.items() if d not in unpriced},
        unpriced=tuple(unpriced),
    )  # fmt: skip
