"""The typed samples the router and the tools hand to ``Metrics`` (one per measured thing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DecisionSample:
    """One routed request as the dashboards need it."""

    tenant: str
    model: str
    region: str
    reason: str
    policy: str
    co2_est_g: float
    accuracy_est: float
    latency_p95_est_ms: float
    # What the always-largest baseline would have emitted for the same request (None: unknown).
    co2_baseline_g: float | None = None


@dataclass(frozen=True, slots=True)
class CompletionSample:
    tenant: str
    model: str
    region: str
    latency_ms: float
    co2_realised_g: float | None = None
    co2_est_g: float | None = None
    energy_j: float | None = None
    correct: bool | None = None
    slo_latency_ms: float | None = None
    dataset: str = ""  # "" = unknown: not counted in the per-dataset accuracy


@dataclass(frozen=True, slots=True)
class BudgetSample:
    tenant: str
    spend_g: float
    budget_g: float
    window_s: float


@dataclass(frozen=True, slots=True)
class DualSample:
    tenant: str
    lambda_carbon: float
    nu_latency: float
    mu_accuracy_by_dataset: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class DatasetDecisions:
    """Decisions of one dataset over a batch: the estimate of the choices and the floor."""

    dataset: str
    count: int
    accuracy_est_sum: float
    floor: float  # the effective floor of the dataset's latest decision


@dataclass(frozen=True, slots=True)
class AccuracySample:
    model: str
    dataset: str
    accuracy_est: float
    accuracy_obs: float | None
    n_obs: int


@dataclass(frozen=True, slots=True)
class CandidateSample:
    """Estimator view of one candidate (model x region): estimate vs what telemetry shows."""

    model: str
    region: str
    latency_p95_est_ms: float
    latency_p95_obs_ms: float | None
    energy_est_j_per_token: float
    energy_obs_j_per_token: float | None
    n_obs: int


@dataclass(frozen=True, slots=True)
class IntensitySample:
    zone: str
    intensity_g_per_kwh: float
    age_s: float
    source: str
    signal_type: str
    estimated: bool
    stale: bool


@dataclass(frozen=True, slots=True)
class LagSample:
    topic: str
    partition: int
    group: str
    lag_messages: int
    uncommitted_messages: int | None = None
    """Records after the group's committed offset (read but not yet processed and committed,
    or not read yet); None where the reader does not commit through the group."""
