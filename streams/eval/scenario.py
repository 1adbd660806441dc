"""The evaluation scenario: every setting in one object, and the loaded world built from it.

Defaults are the documented default scenario (docs/evaluation.md). ``Scenario.describe()``
echoes every setting, including the model -> energy-profile mapping, into the JSON report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from streams.core import Catalog, PolicyConfig
from streams.data.carbon import SignalKind, ZoneIntensity, load_carbon_dir
from streams.data.catalog_builder import (
    DEFAULT_MODELS,
    DEFAULT_PRIOR_STRENGTH,
    DEFAULT_ZONES,
    BuiltCatalog,
    build_catalog,
    calibration_mask,
    open_models,
)
from streams.data.correctness import CorrectnessData, load_correctness
from streams.data.energy import load_energy
from streams.data.mapping import MappingOptions
from streams.data.regions import CLIENT_SITES, home_zone
from streams.eval.trace import (
    DAY_MS,
    DEFAULT_INPUT_TOKENS,
    FALLBACK_INPUT_TOKENS,
    Trace,
    TraceOptions,
    build_trace,
    default_start_ms,
)
from streams.eval.world import World

if TYPE_CHECKING:
    from streams.eval.calibrate import Calibration

HOUR_MS = 3_600_000
ALL_OPEN = "all-open"
HINDSIGHT_STRENGTH = 1e7
PriorSource = Literal["calibration", "hindsight"]


@dataclass(frozen=True)
class ScenarioSettings:
    correctness: tuple[Path, ...]
    energy: Path
    carbon_dir: Path
    zones: tuple[str, ...] = DEFAULT_ZONES
    models: tuple[str, ...] = DEFAULT_MODELS
    signal: SignalKind = "direct"
    floor_alpha: float = 0.95
    floors: dict[str, float] = field(default_factory=dict)
    slo_ms: float = 12_000.0
    n_requests: int = 10_000
    days: float = 7.0
    start_ms: int | None = None
    seed: int = 0
    batch_ms: int = 300_000
    mode: str = "balanced"
    budget_fraction: float | None = 0.5
    budget_window_ms: int = HOUR_MS
    floor_window_ms: int = 24 * HOUR_MS
    prior_strength: float = DEFAULT_PRIOR_STRENGTH
    mapping: MappingOptions = field(default_factory=MappingOptions)
    policy_overrides: dict[str, Any] = field(default_factory=dict)
    priors: PriorSource = "calibration"
    """``hindsight``: an ablation, priors = each model's true mean accuracy on the trace with
    overwhelming strength (what the online learning costs, not a deployable setting)."""
    calibrate: bool = False
    """Tune gar-pd's per-dataset mu targets and starting mu with a calibration LP on the
    calibration half and the preceding period (``streams.eval.calibrate``)."""
    calib_pool_margin: float = 0.01
    """Pooled daily margin (accuracy) the calibration LP must hold over the floors."""
    calib_floor_margin: float = 0.005
    """The router's uniform floor_margin on top of the calibrated targets."""


@dataclass
class Scenario:
    settings: ScenarioSettings
    data: CorrectnessData
    built: BuiltCatalog
    zones: dict[str, ZoneIntensity]
    trace: Trace
    world: World
    floors: dict[str, float]
    budgets_g: dict[str, float]
    budget_allowance_g_per_request: float | None
    home: dict[str, str]
    config: PolicyConfig
    calibration: Calibration | None = None

    @property
    def catalog(self) -> Catalog:
        return self.built.catalog

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "correctness_files": [str(p) for p in s.correctness],
            "energy_file": str(s.energy),
            "carbon_dir": str(s.carbon_dir),
            "carbon_signal": s.signal,
            "zones": list(s.zones),
            "regions": [
                {"zone": r.zone, "pue": r.pue, "rtt_ms": dict(r.rtt_ms)}
                for r in self.catalog.regions
            ],
            "client_regions": {c: {"home_zone": z} for c, z in self.home.items()},
            "models": [
                {
                    "name": m.name,
                    "params_b": m.params_b,
                    "datasets": self.built.datasets_by_model[m.name],
                    "energy_mapping": self.built.mappings[m.name].to_dict(),
                }
                for m in self.catalog.models
            ],
            "energy_mapping_rule": (
                "nearest total parameters (log distance), dense vs MoE, ML.ENERGY task "
                f"{s.mapping.task!r} on {s.mapping.gpu_model}, batch = lowest J/token with "
                f"p95 ITL <= {s.mapping.itl_p95_cap_ms:g} ms"
            ),
            "floor_alpha": s.floor_alpha,
            "floors": self.floors,
            "floor_rule": "F_d = floor_alpha x best pool accuracy on d (calibration half), "
            "unless given explicitly",
            "floor_window_ms": s.floor_window_ms,
            "slo_ms": s.slo_ms,
            "n_requests": s.n_requests,
            "days": s.days,
            "start_ms": self.trace.options.start_ms,
            "start_utc": str(np.datetime64(self.trace.options.start_ms, "ms")),
            "seed": s.seed,
            "batch_ms": s.batch_ms,
            "mode": s.mode,
            "budget_fraction": s.budget_fraction,
            "budget_window_ms": s.budget_window_ms,
            "budget_allowance_g_per_request": self.budget_allowance_g_per_request,
            "budgets_g": self.budgets_g,
            "prior_strength": s.prior_strength,
            "priors_from": (
                "calibration half (fixed hash split of dataset/query_id)"
                if s.priors == "calibration"
                else "hindsight ablation: true trace means, strength 1e7"
            ),
            "trace": self.trace.describe(),
            "policy_config": self.config.to_dict(),
            "calibration": None if self.calibration is None else self.calibration.describe(),
        }


def resolve_models(data: CorrectnessData, models: Sequence[str]) -> tuple[str, ...]:
    """``all-open`` -> every model with a parameter count. The default pool keeps the models
    the given files contain, or falls back to all open models for other correctness files."""
    if list(models) == [ALL_OPEN]:
        return tuple(open_models(data))
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
        TraceOptions(n_requests=s.n_requests, start_ms=start, days=s.days, seed=s.seed),
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
    from streams.eval.calibrate import calibrate  # calibrate -> oracles -> this module

    s = scn.settings
    cal = calibrate(scn, s.calib_pool_margin, s.calib_floor_margin)
    fields_ = {**cal.overrides(), **{k: v for k, v in s.policy_overrides.items()
                                     if k in cal.overrides()}}
    config = scn.config.with_(**fields_, version=f"{scn.config.version}-cal")
    return replace(scn, config=config, calibration=cal)


def with_floor_alpha(scn: Scenario, alpha: float) -> Scenario:
    """The same world and trace with floors F_d = alpha x best calibration accuracy (and, if
    the scenario is calibrated, the calibration redone for those floors)."""
    floors = calibration_floors(scn.data, scn.catalog.model_names, alpha)
    config = scn.config.with_(floors=floors, version=f"{scn.config.version}-a{alpha:g}")
    out = replace(scn, floors=floors, config=config, calibration=None)
    return calibrated(out) if scn.calibration is not None else out
