"""Building the evaluation scenario: the world (catalog, trace, carbon, floors, budgets) from
``ScenarioSettings``, calibrated when asked (``streams.eval.calibrate``). The types are in
``streams.eval.scenario_types`` and re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from streams.core import Catalog, PolicyConfig
from streams.data.carbon import ZoneIntensity, load_carbon_dir
from streams.data.catalog_builder import (
    DEFAULT_MODELS,
    GSM8K_MODELS,
    ROUTERBENCH_MODELS,
    build_catalog,
    calibration_mask,
    open_models,
)
from streams.data.correctness import CorrectnessData, load_correctness
from streams.data.energy import load_energy
from streams.data.regions import CLIENT_SITES, home_zone
from streams.eval.calibrate import calibrate
from streams.eval.scenario_types import (
    ALL_OPEN,
    HINDSIGHT_STRENGTH,
    HOUR_MS,
    Scenario,
    ScenarioSettings,
)
from streams.eval.trace import (
    DAY_MS,
    DEFAULT_INPUT_TOKENS,
    FALLBACK_INPUT_TOKENS,
    Trace,
    TraceOptions,
    build_trace,
    default_start_ms,
    zipf_tenants,
)
from streams.eval.world import World

__all__ = [
    "ALL_OPEN",
    "MODEL_POOLS",
    "Scenario",
    "ScenarioSettings",
    "build_scenario",
    "calibrated",
    "trace_options",
    "with_floor_alpha",
]


MODEL_POOLS: dict[str, tuple[str, ...]] = {
    "default": DEFAULT_MODELS,
    "gsm8k": GSM8K_MODELS,
    "routerbench": ROUTERBENCH_MODELS,
}
"""Named model pools (``--models NAME``); ``all-open`` is every open model of the files."""


def trace_options(s: ScenarioSettings, start_ms: int) -> TraceOptions:
    """The trace generator's options for these settings (the defaults leave the generator's
    own defaults untouched, so the default trace stays the same for the same seed)."""
    extra: dict[str, Any] = {}
    if s.tenants is not None:
        extra["tenants"] = zipf_tenants(s.tenants, s.tenant_skew)
    if s.dataset_shares:
        extra["dataset_shares"] = dict(s.dataset_shares)
    return TraceOptions(
        n_requests=s.n_requests, start_ms=start_ms, days=s.days, seed=s.seed, **extra
    )


def resolve_models(data: CorrectnessData, models: Sequence[str]) -> tuple[str, ...]:
    """``all-open`` -> every model with a parameter count; a pool name (``MODEL_POOLS``) -> its
    models. The default pool keeps the models the given files contain, or falls back to all
    open models for other correctness files."""
    if list(models) == [ALL_OPEN]:
        return tuple(open_models(data))
    if len(models) == 1 and models[0] in MODEL_POOLS:
        models = MODEL_POOLS[models[0]]
    if tuple(models) == DEFAULT_MODELS:
        present = tuple(m for m in DEFAULT_MODELS if m in data.models)
        return present or tuple(open_models(data))
    return tuple(models)


def calibration_floors(
    data: CorrectnessData, models: Sequence[str], alpha: float
) -> dict[str, float]:
    """F_d = alpha x the best pool model's accuracy on d, over the calibration half only."""
    calib = calibration_mask(data)
    floors: dict[str, float] = {}
    for d, name in enumerate(data.datasets):
        best = -1.0
        for m in models:
            mi = data.model_index(m)
            rows = calib & (data.dataset_idx == d) & (data.correct[:, mi] >= 0)
            if rows.any():
                best = max(best, float(data.correct[rows, mi].mean()))
        if best >= 0:
            floors[name] = round(alpha * best, 4)
    return floors


def _budget_allowance(
    cat: Catalog, zones: dict[str, ZoneIntensity], home: dict[str, str], trace: Trace
) -> float:
    """Prior CO2 per request of the largest allowed model in the client's home zone, at the
    zone's mean intensity over the carbon file, with catalog output lengths (no hindsight)."""
    sample = trace.requests[:2000]
    total = 0.0
    for req in sample:
        allowed = [cat.models[cat.model_index[m]] for m in (req.allow_models or cat.model_names)]
        largest = max(allowed, key=lambda m: (m.params_b, m.name))
        zone = home[req.client_region]
        pue = next(r.pue for r in cat.regions if r.zone == zone)
        tokens_in = DEFAULT_INPUT_TOKENS.get(req.dataset, FALLBACK_INPUT_TOKENS)
        energy_j = largest.energy_per_input_token_j * tokens_in + (
            largest.energy_per_output_token_j * largest.output_tokens_for(req.dataset)
        )
        total += energy_j / 3.6e6 * float(zones[zone].intensity_g_per_kwh.mean()) * pue
    return total / len(sample)


def hindsight_catalog(catalog: Catalog, trace: Trace) -> Catalog:
    """The catalog with priors = true mean accuracy per (model, dataset) over the trace."""
    raw = catalog.to_dict()
    for model in raw["models"]:
        j = trace.models.index(model["name"])
        for dataset in model["correctness_prior"]:
            if dataset not in trace.dataset_names:
                continue
            rows = (trace.dataset_idx == trace.dataset_names.index(dataset)) & (
                trace.correct[:, j] >= 0
            )
            if rows.any():
                mean = float(trace.correct[rows, j].mean())
                model["correctness_prior"][dataset] = {
                    "mean": mean,
                    "strength": HINDSIGHT_STRENGTH,
                }
    raw["version"] = f"{catalog.version}-hindsight"
    return Catalog.from_dict(raw)


def build_scenario(settings: ScenarioSettings) -> Scenario:
    s = settings
    data = load_correctness(list(s.correctness))
    profiles = load_energy(s.energy)
    models = resolve_models(data, s.models)
    built = build_catalog(
        data, profiles, models, s.zones, prior_strength=s.prior_strength, mapping=s.mapping
    )
    zones = load_carbon_dir(s.carbon_dir, list(s.zones), s.signal)
    start = s.start_ms
    if start is None and s.start_day is not None:
        start = max(int(z.ts_ms[0]) for z in zones.values()) + int(s.start_day * DAY_MS)
    if start is None:
        start = default_start_ms(
            [int(z.ts_ms[0]) for z in zones.values()],
            [int(z.ts_ms[-1]) for z in zones.values()],
            s.days,
        )
    end = start + int(s.days * DAY_MS)
    for z in zones.values():
        if start < z.ts_ms[0] or end > z.ts_ms[-1] + HOUR_MS:
            raise ValueError(
                f"zone {z.zone}: carbon data covers {np.datetime64(int(z.ts_ms[0]), 'ms')} .. "
                f"{np.datetime64(int(z.ts_ms[-1]), 'ms')}, not the scenario period "
                f"{np.datetime64(start, 'ms')} + {s.days:g} days"
            )
    trace = build_trace(
        data,
        built.catalog,
        trace_options(s, start),
    )
    if s.priors == "hindsight":
        built = replace(built, catalog=hindsight_catalog(built.catalog, trace))
    world = World(built.catalog, trace, zones, built.mappings)
    floors = calibration_floors(data, models, s.floor_alpha)
    floors.update(s.floors)
    home = {c: home_zone(c, list(s.zones)) for c in CLIENT_SITES if c in trace.client_regions}
    allowance: float | None = None
    budgets: dict[str, float] = {}
    if s.budget_fraction is not None:
        allowance = s.budget_fraction * _budget_allowance(built.catalog, zones, home, trace)
        period_ms = s.days * DAY_MS
        for t, share in trace.options.tenants.items():
            expected = s.n_requests * share / sum(trace.options.tenants.values())
            budgets[t] = allowance * expected * s.budget_window_ms / period_ms
    settings_kw: dict[str, Any] = {
        "version": f"eval-{s.mode}-1",
        "floors": floors,
        "adaptive_floor_alpha": None,
        "latency_slo_ms": s.slo_ms,
        "budgets_g": budgets,
        "budget_window_ms": s.budget_window_ms,
        "seed": s.seed,
    }
    settings_kw.update(s.policy_overrides)
    config = PolicyConfig.preset(s.mode, **settings_kw)  # type: ignore[arg-type]
    scn = Scenario(s, data, built, zones, trace, world, floors, budgets, allowance, home, config)
    return calibrated(scn) if s.calibrate else scn


def calibrated(scn: Scenario) -> Scenario:
    """``scn`` with gar-pd's floor targets and starting mu from a calibration LP (explicit
    ``policy_overrides`` still win)."""
    s = scn.settings
    cal = calibrate(scn, s.calib_pool_margin, s.calib_floor_margin)
    fields_ = {
        **cal.overrides(),
        **{k: v for k, v in s.policy_overrides.items() if k in cal.overrides()},
    }
    config = scn.config.with_(**fields_, version=f"{scn.config.version}-cal")
    return replace(scn, config=config, calibration=cal)


def with_floor_alpha(scn: Scenario, alpha: float) -> Scenario:
    """The same world and trace with floors F_d = alpha x best calibration accuracy (and, if
    the scenario is calibrated, the calibration redone for those floors)."""
    floors = calibration_floors(scn.data, scn.catalog.model_names, alpha)
    config = scn.config.with_(floors=floors, version=f"{scn.config.version}-a{alpha:g}")
    out = replace(scn, floors=floors, config=config, calibration=None)
    return calibrated(out) if scn.calibration is not None else out
