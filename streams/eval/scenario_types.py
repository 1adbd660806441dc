"""The evaluation scenario as data: every setting in one object (``ScenarioSettings``), the
loaded world built from it (``Scenario``) and the calibration result it may carry.

Defaults are the documented default scenario (docs/evaluation.md). ``Scenario.describe()``
echoes every setting, including the model -> energy-profile mapping, into the JSON report.
Builders live in ``scenario`` (world) and ``calibrate`` (the calibration LP); both, and the
oracles, import these types from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from streams.core import Catalog, PolicyConfig
from streams.data.carbon import SignalKind, ZoneIntensity
from streams.data.catalog_builder import (
    DEFAULT_MODELS,
    DEFAULT_PRIOR_STRENGTH,
    DEFAULT_ZONES,
    BuiltCatalog,
)
from streams.data.correctness import CorrectnessData
from streams.data.mapping import MappingOptions
from streams.eval.trace import Trace
from streams.eval.world import World

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
    start_day: float | None = None
    """Start this many days after the first common hour of the carbon data (``start_ms``
    wins); neither: day 150 (early June for a calendar year)."""
    seed: int = 0
    tenants: int | None = None
    """Number of tenants with Zipf shares (``tenant_skew``); None: tenant-a/b/c 50/30/20%."""
    tenant_skew: float = 1.0
    dataset_shares: dict[str, float] = field(default_factory=dict)
    """Traffic share per named dataset (the rest split by question count); empty: uniform
    over questions."""
    batch_ms: int = 300_000
    partitions: int = 4
    """Requests partitions the tenants hash to (the worker's ``topics.partitions``): each is a
    scope whose tenants share gar-pd's pooled duals."""
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
            "partitions": s.partitions,
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


@dataclass(frozen=True)
class Calibration:
    start_ms: int
    days: float
    n_requests: int
    seed: int
    pool_margin: float
    floor_margin: float
    carbon_ref_g: float
    accuracy_pooled: dict[str, float]
    """Expected accuracy per dataset of the calibration LP with the pooled daily margin."""
    floor_targets: dict[str, float]
    floor_dual_g: dict[str, float]
    """Shadow price per dataset (g CO2 per unit accuracy x requests) at the targets."""
    mu_init_by_dataset: dict[str, float]
    unpriced: tuple[str, ...] = ()
    """Datasets whose target the calibration LP could not meet (no starting mu: warm start)."""

    def overrides(self) -> dict[str, Any]:
        """The PolicyConfig fields the calibration sets (the operator publishes them)."""
        return {
            "floor_targets": dict(self.floor_targets),
            "mu_init_by_dataset": dict(self.mu_init_by_dataset),
            "floor_margin": self.floor_margin,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "data": "calibration half of the questions; carbon of the period before the trace",
            "start_ms": self.start_ms,
            "start_utc": str(np.datetime64(self.start_ms, "ms")),
            "days": self.days,
            "n_requests": self.n_requests,
            "seed": self.seed,
            "pool_margin": self.pool_margin,
            "floor_margin": self.floor_margin,
            "carbon_ref_g": self.carbon_ref_g,
            "accuracy_pooled_lp": self.accuracy_pooled,
            "floor_targets": self.floor_targets,
            "floor_dual_g": self.floor_dual_g,
            "mu_init_by_dataset": self.mu_init_by_dataset,
            "unpriced": list(self.unpriced),
        }
