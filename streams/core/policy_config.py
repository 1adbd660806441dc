"""Versioned policy configuration and the three mode presets (strict, balanced, green).

Every number that changes a decision lives here, so a decision record's ``policy_version``
plus this object (published on the compacted ``policy`` topic) re-derives the decision.
See docs/routing.md for the meaning of each field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from streams.core.errors import PolicyConfigError

Mode = Literal["strict", "balanced", "green"]
MODES: tuple[Mode, ...] = ("strict", "balanced", "green")
DEFAULT_MODE: Mode = "balanced"
LATENCY_QUANTILES: tuple[float, ...] = (0.5, 0.8, 0.95)
ExploreRule = Literal["sd", "anchored", "kl-ucb", "kl-ucb-short", "thompson"]
EXPLORE_RULES: tuple[ExploreRule, ...] = ("sd", "anchored", "kl-ucb", "kl-ucb-short", "thompson")


# The fields each mode sets (``PolicyConfig.preset``; a tenant override's mode applies them too).
PRESETS: dict[str, dict[str, Any]] = {
    # Floors and SLO hard with safety margins, LCB scoring; budget soft (lambda only).
    "strict": {
        "floor_hard": True,
        "floor_margin": 0.01,
        "use_lcb": True,
        "slo_margin": 0.1,
        "budget_hard": False,
        "max_accuracy_loss": 0.0,
        "mu_warm_start": True,
    },
    # Floors met on average by mu, with a 1.5-point margin so that daily windows hold
    # too, (per request at most 20 points below), learning by optimistic exploration
    # and realised-correctness feedback; SLO hard, budget soft (lambda). mu is pooled per
    # requests partition and optimism anchored on the catalog's claim: on the 18-scenario
    # matrix that misses the fewest floors (docs/routing.md section 5, docs/evaluation.md).
    "balanced": {
        "floor_hard": False,
        "floor_margin": 0.015,
        "use_lcb": False,
        "slo_margin": 0.0,
        "budget_hard": False,
        "max_accuracy_loss": 0.20,
        "explore_z": 1.0,
        "explore_rule": "anchored",
        "feedback_weight": 0.3,
        "mu_warm_start": True,
        "mu_pooled": True,
        "latency_quantile": 0.8,
    },
    # Budget hard; floors soft within a stated maximum loss of 5 points per request.
    "green": {
        "floor_hard": False,
        "floor_margin": 0.0,
        "use_lcb": False,
        "slo_margin": 0.0,
        "budget_hard": True,
        "max_accuracy_loss": 0.05,
        "explore_z": 1.0,
        "feedback_weight": 0.3,
        "mu_warm_start": True,
    },
}


@dataclass(frozen=True, slots=True)
class TenantOverride:
    """One tenant's changes on top of the global policy. ``mode`` applies that mode's preset
    for the tenant; ``floors`` (per dataset) add to and replace the global floors;
    ``latency_slo_ms`` and ``budget_g`` replace the global SLO and the tenant's budget. The
    ``version`` names this override: a decision under it records the policy version
    ``<global version>+<tenant>@<override version>``."""

    version: str = "1"
    mode: Mode | None = None
    floors: Mapping[str, float] = field(default_factory=dict)
    default_floor: float | None = None
    latency_slo_ms: float | None = None
    budget_g: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not self.version:
            raise PolicyConfigError("tenant override version must be a non-empty string")
        if self.mode is not None and self.mode not in MODES:
            raise PolicyConfigError(f"unknown mode {self.mode!r}; expected one of {MODES}")
        for name, v in (("default_floor", self.default_floor), *self.floors.items()):
            if v is not None and not (math.isfinite(v) and 0.0 <= v <= 1.0):
                raise PolicyConfigError(f"tenant floor {name}={v} not in [0, 1]")
        if self.latency_slo_ms is not None and not (
            math.isfinite(self.latency_slo_ms) and self.latency_slo_ms > 0
        ):
            raise PolicyConfigError("tenant latency_slo_ms must be > 0")
        if self.budget_g is not None and not (math.isfinite(self.budget_g) and self.budget_g > 0):
            raise PolicyConfigError("tenant budget_g must be > 0")

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        d["floors"] = dict(self.floors)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | TenantOverride) -> TenantOverride:
        if isinstance(d, TenantOverride):
            return d
        known = {f.name for f in fields(cls)}
        if unknown := set(d) - known:
            raise PolicyConfigError(f"unknown tenant override fields {sorted(unknown)}")
        return cls(**dict(d))


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    version: str = "1"
    mode: Mode = "balanced"

    # --- accuracy floors ---------------------------------------------------------------------
    floors: Mapping[str, float] = field(default_factory=dict)
    """Explicit minimum floor F_min per dataset."""
    default_floor: float = 0.0
    """F_min for datasets without an explicit floor."""
    adaptive_floor_alpha: float | None = 0.95
    """Adaptive rule: F_d = max(F_min_d, alpha * best estimated accuracy on d). None = off."""
    floor_hard: bool = False
    """Per-request hard filter: scoring accuracy >= F_d + floor_margin (strict)."""
    floor_margin: float = 0.005
    """Safety margin added to F_d in hard filters and in the mu target."""
    max_accuracy_loss: float = 0.10
    """Soft floors: per-request hard filter scoring accuracy >= F_d - max_accuracy_loss."""
    use_lcb: bool = False
    """Score accuracy with the Beta lower confidence bound instead of the posterior mean."""
    lcb_z: float = 1.645
    feedback_weight: float = 0.0
    """gar-pd: weight of realised correctness in the mu dual. Each graded completion adds
    weight x (correct - estimated accuracy) to the tenant's surprise (``fold_feedback``),
    which the next mu step on that dataset counts; 1 = mu integrates realised accuracy."""
    explore_z: float = 0.0
    """gar-pd explores: it chooses (score and per-request filter) on an optimistic accuracy
    and steps mu on the scoring accuracy. explore_z scales the optimism (0 = off)."""
    explore_rule: ExploreRule = "sd"
    """``sd``: scoring accuracy + explore_z x posterior sd. ``kl-ucb``: the KL upper
    confidence bound with threshold explore_z x ln(e + graded answers on the dataset)."""

    # --- latency -----------------------------------------------------------------------------
    latency_slo_ms: float = 5_000.0
    """p95 SLO L. Candidates with estimated p95 > L*(1 - slo_margin) are filtered (hard)."""
    slo_margin: float = 0.0
    latency_quantile: float = 0.95
    """Quantile of each request's serving latency that the SLO filter and the nu term use (one
    of LATENCY_QUANTILES): 0.95 = every request's own p95 within the SLO (strict); lower
    values hold the SLO as the population p95 it is measured as."""
    latency_target_ratio: float = 0.8
    """nu keeps the mean normalised latency of choices <= this fraction of the SLO."""

    # --- carbon budgets ----------------------------------------------------------------------
    budgets_g: Mapping[str, float] = field(default_factory=dict)
    """Per-tenant budget B (g CO2) per rolling window."""
    default_budget_g: float | None = None
    """Budget of tenants not in budgets_g. None = unlimited (lambda stays 0)."""
    budget_window_ms: int = 3_600_000
    budget_buckets: int = 60
    """The rolling window is kept as this many event-time buckets (width = window/buckets)."""
    budget_hard: bool = False
    """Filter candidates whose CO2 exceeds the budget left in the window (green)."""

    # --- duals -------------------------------------------------------------------------------
    eta_lambda: float = 1.0
    eta_mu: float = 0.5
    eta_nu: float = 0.05
    lambda_max: float = 100.0
    mu_max: float = 100.0
    nu_max: float = 100.0
    mu_init: float = 0.0
    mu_init_by_dataset: Mapping[str, float] = field(default_factory=dict)
    """gar-pd: mu of a tenant's first decision on a listed dataset (instead of mu_init or the
    warm start), e.g. the floor duals of a calibration LP solved on history, on mu's scale
    (LP dual in g per unit accuracy / c_ref). Datasets not listed start as before."""
    floor_targets: Mapping[str, float] = field(default_factory=dict)
    """gar-pd: per-dataset accuracy the mu dual aims at, before floor_margin: the mu target is
    max(F_i, floor_targets[d]) + floor_margin (e.g. a calibration LP's per-dataset accuracy
    under a pooled margin). Filters and the fallback keep F_i. Unlisted datasets: F_i."""
    mu_warm_start: bool = False
    """gar-pd: a tenant's first request on a dataset starts mu at the request's own price of
    the floor (``warm_mu``) instead of mu_init, so mu does not spend its first hundreds of
    requests climbing from 0 while accuracy sits under the floor."""
    mu_pooled: bool = False
    """gar-pd: one accuracy dual per (scope, dataset), shared by every tenant of the scope (the
    requests partition), instead of one per (tenant, dataset). The floor is a per-dataset
    promise over all traffic, and the hindsight LP prices it with one dual per dataset; a
    thin (tenant, dataset) stream never reaches that price on its own."""
    mu_warmup_gain: float = 0.0
    """gar-pd: a tenant's first ``mu_warmup_n`` mu steps on a dataset are (1 + gain x
    remaining / mu_warmup_n) times the normal step (linear decay to 1), so a new tenant finds
    its price of the floor faster. An integral dual's deficit is sum (F - a) = (mu_T - mu_0) /
    eta: climbing to the operating price with the normal step leaves the first day under the
    floor. 0 = off."""
    mu_warmup_n: int = 0
    carbon_ref_g: float | None = None
    """Carbon normaliser c_ref (g). None = derived from the catalog (see RoutingContext)."""

    # --- intensity -----------------------------------------------------------------------------
    intensity_max_age_ms: int = 2 * 3_600_000
    stale_intensity_g_per_kwh: float = 800.0

    # --- variants ------------------------------------------------------------------------------
    eps: float = 0.02
    """gar-eps: candidates within eps of the best accuracy."""
    seed: int = 0
    """random baseline: seed mixed with the request id."""

    # --- per tenant ------------------------------------------------------------------------------
    tenant_overrides: Mapping[str, TenantOverride] = field(default_factory=dict)
    """tenant -> its floors, SLO, mode and budget on top of the rest (``for_tenant``)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise PolicyConfigError(f"unknown mode {self.mode!r}; expected one of {MODES}")
        if any(not isinstance(o, TenantOverride) for o in self.tenant_overrides.values()):
            overrides = {t: TenantOverride.from_dict(o) for t, o in self.tenant_overrides.items()}
            object.__setattr__(self, "tenant_overrides", overrides)
        if not isinstance(self.version, str) or not self.version:
            raise PolicyConfigError("version must be a non-empty string")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise PolicyConfigError(f"{f.name} must be finite")
        for name, v in (("default_floor", self.default_floor), *self.floors.items()):
            if not 0.0 <= v <= 1.0:
                raise PolicyConfigError(f"floor {name}={v} not in [0, 1]")
        for name, v in self.floor_targets.items():
            if not (isinstance(v, float | int) and 0.0 <= v <= 1.0):
                raise PolicyConfigError(f"floor target {name}={v} not in [0, 1]")
        for name, v in self.mu_init_by_dataset.items():
            if not (isinstance(v, float | int) and math.isfinite(v) and v >= 0.0):
                raise PolicyConfigError(f"mu_init_by_dataset {name}={v} must be finite and >= 0")
        a = self.adaptive_floor_alpha
        if a is not None and not 0.0 <= a <= 1.0:
            raise PolicyConfigError("adaptive_floor_alpha must be in [0, 1]")
        for name in (
            "floor_margin",
            "max_accuracy_loss",
            "slo_margin",
            "lcb_z",
            "explore_z",
            "feedback_weight",
            "eta_lambda",
            "eta_mu",
            "eta_nu",
            "lambda_max",
            "mu_max",
            "nu_max",
            "mu_init",
            "mu_warmup_gain",
            "mu_warmup_n",
            "eps",
            "stale_intensity_g_per_kwh",
        ):
            if getattr(self, name) < 0:
                raise PolicyConfigError(f"{name} must be >= 0")
        if self.explore_rule not in EXPLORE_RULES:
            raise PolicyConfigError(f"explore_rule must be one of {EXPLORE_RULES}")
        if self.latency_slo_ms <= 0 or self.latency_target_ratio <= 0:
            raise PolicyConfigError("latency_slo_ms and latency_target_ratio must be > 0")
        if self.latency_quantile not in LATENCY_QUANTILES:
            raise PolicyConfigError(f"latency_quantile must be one of {LATENCY_QUANTILES}")
        if self.slo_margin >= 1:
            raise PolicyConfigError("slo_margin must be < 1")
        if self.budget_window_ms <= 0 or self.budget_buckets <= 0:
            raise PolicyConfigError("budget_window_ms and budget_buckets must be > 0")
        if self.budget_window_ms % self.budget_buckets:
            raise PolicyConfigError("budget_window_ms must be a multiple of budget_buckets")
        for t, b in self.budgets_g.items():
            if not (math.isfinite(b) and b > 0):
                raise PolicyConfigError(f"budget of tenant {t!r} must be > 0")
        if self.default_budget_g is not None and not self.default_budget_g > 0:
            raise PolicyConfigError("default_budget_g must be > 0 or None")
        if self.carbon_ref_g is not None and not self.carbon_ref_g > 0:
            raise PolicyConfigError("carbon_ref_g must be > 0 or None")
        if self.intensity_max_age_ms <= 0:
            raise PolicyConfigError("intensity_max_age_ms must be > 0")

    @property
    def bucket_ms(self) -> int:
        return self.budget_window_ms // self.budget_buckets

    def for_tenant(self, tenant: str) -> PolicyConfig:
        """The config a tenant's requests are decided under: this one, or with the tenant's
        override applied (its mode's preset, then its floors, SLO and budget) and the version
        ``<version>+<tenant>@<override version>``."""
        o = self.tenant_overrides.get(tenant)
        if o is None:
            return self
        changes: dict[str, Any] = {}
        if o.mode is not None:
            changes.update(PRESETS[o.mode])
            changes["mode"] = o.mode
        if o.floors:
            changes["floors"] = {**self.floors, **o.floors}
        if o.default_floor is not None:
            changes["default_floor"] = o.default_floor
        if o.latency_slo_ms is not None:
            changes["latency_slo_ms"] = o.latency_slo_ms
        if o.budget_g is not None:
            changes["budgets_g"] = {**self.budgets_g, tenant: o.budget_g}
        changes["version"] = tenant_version(self.version, tenant, o.version)
        changes["tenant_overrides"] = {}
        return replace(self, **changes)

    def base_version(self) -> str:
        """The global version of a tenant's effective config (``split_version``)."""
        return split_version(self.version)[0]

    def budget_for(self, tenant: str) -> float | None:
        return self.budgets_g.get(tenant, self.default_budget_g)

    def floor_min_for(self, dataset: str) -> float:
        return self.floors.get(dataset, self.default_floor)

    def mu_target(self, dataset: str, floor: float) -> float:
        """The accuracy gar-pd's mu steers a request's dataset to: max(F_i, floor target of
        the dataset) + floor_margin."""
        t = self.floor_targets.get(dataset)
        return (floor if t is None or t <= floor else t) + self.floor_margin

    @classmethod
    def preset(cls, mode: Mode, **overrides: Any) -> PolicyConfig:
        """Mode presets. ``overrides`` replace any field (e.g. budgets, version)."""
        if mode not in MODES:
            raise PolicyConfigError(f"unknown mode {mode!r}; expected one of {MODES}")
        base: dict[str, Any] = dict(PRESETS[mode])
        base["mode"] = mode
        base.update(overrides)
        return cls(**base)

    @classmethod
    def default(cls, **overrides: Any) -> PolicyConfig:
        """The product's default policy: the ``balanced`` preset (what the worker routes with
        before any policy record arrives, and what the evaluation measures). ``PolicyConfig()``
        itself is the neutral base the presets are built on."""
        return cls.preset(DEFAULT_MODE, **overrides)

    @classmethod
    def from_record(cls, d: Mapping[str, Any]) -> PolicyConfig:
        """A policy record's config: its ``mode``'s preset (``balanced`` when it names none)
        with the record's explicit fields on top, so publishing ``{"mode": "green"}`` switches
        every setting of the green preset, not just the label."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise PolicyConfigError(f"unknown policy config fields {sorted(unknown)}")
        mode = d.get("mode", DEFAULT_MODE)
        if mode not in MODES:
            raise PolicyConfigError(f"unknown mode {mode!r}; expected one of {MODES}")
        try:
            return cls.preset(mode, **{k: v for k, v in d.items() if k != "mode"})
        except TypeError as e:
            raise PolicyConfigError(str(e)) from e

    def preset_overrides(self) -> dict[str, Any]:
        """The fields that differ from this config's mode preset (plus the version): the
        smallest policy record that ``from_record`` turns back into this config."""
        base = PolicyConfig.preset(self.mode).to_dict()
        mine = self.to_dict()
        out = {k: v for k, v in mine.items() if k in ("version", "mode") or v != base.get(k)}
        return out

    def with_(self, **changes: Any) -> PolicyConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["floors"] = dict(self.floors)
        d["budgets_g"] = dict(self.budgets_g)
        d["mu_init_by_dataset"] = dict(self.mu_init_by_dataset)
        d["floor_targets"] = dict(self.floor_targets)
        d["tenant_overrides"] = {t: o.to_dict() for t, o in self.tenant_overrides.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PolicyConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise PolicyConfigError(f"unknown policy config fields {sorted(unknown)}")
        try:
            return cls(**dict(d))
        except TypeError as e:
            raise PolicyConfigError(str(e)) from e


def tenant_version(version: str, tenant: str, override_version: str) -> str:
    """The policy version recorded by a decision made under a tenant override."""
    return f"{version}+{tenant}@{override_version}"


def split_version(version: str) -> tuple[str, str | None, str | None]:
    """``"7+acme@2"`` -> ``("7", "acme", "2")``; ``"7"`` -> ``("7", None, None)``."""
    base, plus, rest = version.partition("+")
    if not plus:
        return version, None, None
    tenant, _, override = rest.rpartition("@")
    return base, tenant, override
