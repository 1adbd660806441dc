"""The typed metrics API: one method per measurement of the catalogue (docs/operations.md).

Callers hand over a whole batch; each method aggregates per tag set and writes one point per
group, so the cost per routed request is a dict update, not a line. VictoriaMetrics turns
``measurement field=value`` into the series ``measurement_field``; every categorical value is a
tag because string fields are stored as 0. Counters are per-batch deltas (query them with
``sum_over_time``), gauges are last values (``last_over_time``/``max``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from streams.metrics.line import encode_with_head, head
from streams.metrics.writer import MetricsWriter

DECISIONS = "gar_decisions"
COMPLETIONS = "gar_completions"
BUDGET = "gar_budget"
DUALS = "gar_duals"
EST_ACCURACY = "gar_estimator_accuracy"
EST_LATENCY = "gar_estimator_latency"
EST_ENERGY = "gar_estimator_energy"
INTENSITY = "gar_intensity"
DEAD_LETTERS = "gar_dead_letters"
CONSUMER = "gar_consumer"
THROUGHPUT = "gar_throughput"
WRITER = "gar_metrics_writer"
EVENT_LOOP = "gar_event_loop"

DecisionKey = tuple[str, str, str, str, str]  # tenant, model, region, reason, policy
_MAX_CACHED_HEADS = 10_000  # decision series whose escaped tags are kept (~300 B each)

ALL_MEASUREMENTS = (
    DECISIONS,
    COMPLETIONS,
    BUDGET,
    DUALS,
    EST_ACCURACY,
    EST_LATENCY,
    EST_ENERGY,
    INTENSITY,
    DEAD_LETTERS,
    CONSUMER,
    THROUGHPUT,
    WRITER,
    EVENT_LOOP,
)


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


def _bool_tag(value: bool) -> str:
    return "true" if value else "false"


class Metrics:
    """Typed facade over ``MetricsWriter``. ``writer=None`` makes every call a no-op."""

    def __init__(self, writer: MetricsWriter | None, *, worker: str = "") -> None:
        self._w = writer
        self._worker = worker
        self._decision_heads: dict[DecisionKey, str] = {}

    @property
    def writer(self) -> MetricsWriter | None:
        return self._w

    def _tags(self, **tags: str) -> dict[str, str]:
        if self._worker:
            tags["worker"] = self._worker
        return tags

    def _ts(self, ts_ms: int | None) -> int:
        assert self._w is not None
        return self._w.now_ms() if ts_ms is None else ts_ms

    # -- routing ------------------------------------------------------------------------
    def decisions(self, samples: Iterable[DecisionSample], ts_ms: int | None = None) -> None:
        if self._w is None:
            return
        groups: dict[DecisionKey, list[float]] = defaultdict(lambda: [0.0] * 6)
        for s in samples:
            g = groups[(s.tenant, s.model, s.region, s.reason, s.policy)]
            g[0] += 1
            g[1] += s.co2_est_g
            g[2] += s.accuracy_est
            g[3] += s.latency_p95_est_ms
            if s.co2_baseline_g is not None:
                g[4] += s.co2_baseline_g
                g[5] += 1
        self.decision_totals(groups, ts_ms)

    def decision_totals(
        self, groups: Mapping[DecisionKey, Sequence[float]], ts_ms: int | None = None
    ) -> None:
        """Already aggregated decisions: ``groups[(tenant, model, region, reason, policy)] =
        (count, co2_est_g, accuracy_est_sum, latency_p95_est_ms_sum, co2_baseline_g,
        baseline_count)``."""
        if self._w is None:
            return
        ts = self._ts(ts_ms)
        heads = self._decision_heads
        lines = []
        for key, g in groups.items():
            line_head = heads.get(key)
            if line_head is None:  # one series per key: escape and sort its tags once
                tenant, model, region, reason, policy = key
                line_head = head(DECISIONS, self._tags(
                    tenant=tenant, model=model, region=region, reason=reason, policy=policy))
                if len(heads) < _MAX_CACHED_HEADS:
                    heads[key] = line_head
            fields: dict[str, float | int | bool] = {
                "count": int(g[0]),
                "co2_est_g": g[1],
                "accuracy_est_sum": g[2],
                "latency_p95_est_ms_sum": g[3],
            }
            if g[5]:
                fields["co2_baseline_g"] = g[4]
                fields["baseline_count"] = int(g[5])
            line = encode_with_head(line_head, fields, ts)
            if line is not None:
                lines.append(line)
        if lines:
            self._w.add_lines(lines)

    def completions(self, samples: Iterable[CompletionSample], ts_ms: int | None = None) -> None:
        if self._w is None:
            return
        groups: dict[tuple[str, str, str], dict[str, float]] = defaultdict(
            lambda: defaultdict(float)
        )
        for s in samples:
            g = groups[(s.tenant, s.model, s.region)]
            g["count"] += 1
            g["latency_ms_sum"] += s.latency_ms
            if s.co2_realised_g is not None:
                g["co2_realised_g"] += s.co2_realised_g
                g["co2_realised_count"] += 1
                if s.co2_est_g is not None:
                    g["co2_est_g"] += s.co2_est_g
            if s.energy_j is not None:
                g["energy_j"] += s.energy_j
            if s.correct is not None:
                g["correct_count"] += int(s.correct)
                g["graded_count"] += 1
            over_slo = s.slo_latency_ms is not None and s.latency_ms > s.slo_latency_ms
            g["slo_violations"] += int(over_slo)
        ts = self._ts(ts_ms)
        counts = {"count", "co2_realised_count", "correct_count", "graded_count", "slo_violations"}
        for (tenant, model, region), g in groups.items():
            fields: dict[str, float | int | bool] = {
                k: (int(v) if k in counts else v) for k, v in g.items()
            }
            self._w.add(
                COMPLETIONS, self._tags(tenant=tenant, model=model, region=region), fields, ts
            )

    def budgets(self, samples: Iterable[BudgetSample], ts_ms: int | None = None) -> None:
        if self._w is None:
            return
        ts = self._ts(ts_ms)
        for s in samples:
            used = s.spend_g / s.budget_g if s.budget_g > 0 else 0.0
            self._w.add(
                BUDGET,
                self._tags(tenant=s.tenant),
                {
                    "spend_g": s.spend_g,
                    "budget_g": s.budget_g,
                    "used_ratio": used,
                    "window_s": s.window_s,
                },
                ts,
            )

    def duals(self, samples: Iterable[DualSample], ts_ms: int | None = None) -> None:
        if self._w is None:
            return
        ts = self._ts(ts_ms)
        for s in samples:
            # One point per dual; lambda and nu are not per dataset.
            points = [("lambda", "all", s.lambda_carbon), ("nu", "all", s.nu_latency)]
            points += [("mu", d, mu) for d, mu in s.mu_accuracy_by_dataset.items()]
            for dual, dataset, value in points:
                tags = self._tags(tenant=s.tenant, dual=dual, dataset=dataset)
                self._w.add(DUALS, tags, {"value": value}, ts)

    # -- estimators ---------------------------------------------------------------------
    def accuracy(self, samples: Iterable[AccuracySample], ts_ms: int | None = None) -> None:
        if self._w is None:
            return
        ts = self._ts(ts_ms)
        for s in samples:
            fields: dict[str, float | int | bool] = {"est": s.accuracy_est, "n_obs": s.n_obs}
            if s.accuracy_obs is not None:
                fields["obs"] = s.accuracy_obs
                fields["error"] = s.accuracy_est - s.accuracy_obs
            self._w.add(EST_ACCURACY, self._tags(model=s.model, dataset=s.dataset), fields, ts)

    def candidates(self, samples: Iterable[CandidateSample], ts_ms: int | None = None) -> None:
        if self._w is None:
            return
        ts = self._ts(ts_ms)
        for s in samples:
            tags = self._tags(model=s.model, region=s.region)
            lat: dict[str, float | int | bool] = {
                "p95_est_ms": s.latency_p95_est_ms,
                "n_obs": s.n_obs,
            }
            if s.latency_p95_obs_ms is not None:
                lat["p95_obs_ms"] = s.latency_p95_obs_ms
                lat["p95_error_ms"] = s.latency_p95_est_ms - s.latency_p95_obs_ms
            self._w.add(EST_LATENCY, tags, lat, ts)
            en: dict[str, float | int | bool] = {"est_j_per_token": s.energy_est_j_per_token}
            if s.energy_obs_j_per_token is not None:
                en["obs_j_per_token"] = s.energy_obs_j_per_token
                en["error_j_per_token"] = s.energy_est_j_per_token - s.energy_obs_j_per_token
            self._w.add(EST_ENERGY, tags, en, ts)

    def intensity(self, samples: Iterable[IntensitySample], ts_ms: int | None = None) -> None:
        if self._w is None:
            return
        ts = self._ts(ts_ms)
        for s in samples:
            self._w.add(
                INTENSITY,
                self._tags(
                    zone=s.zone,
                    source=s.source,
                    signal_type=s.signal_type,
                    estimated=_bool_tag(s.estimated),
                ),
                {"g_per_kwh": s.intensity_g_per_kwh, "age_s": s.age_s, "stale": int(s.stale)},
                ts,
            )

    # -- pipeline -----------------------------------------------------------------------
    def dead_letters(self, counts: Mapping[tuple[str, str], int], ts_ms: int | None = None) -> None:
        """``counts[(reason, stage)] = n`` for this batch."""
        if self._w is None:
            return
        ts = self._ts(ts_ms)
        for (reason, stage), n in counts.items():
            self._w.add(DEAD_LETTERS, self._tags(reason=reason, stage=stage), {"count": n}, ts)

    def consumer_lag(self, samples: Sequence[LagSample], ts_ms: int | None = None) -> None:
        if self._w is None:
            return
        ts = self._ts(ts_ms)
        for s in samples:
            self._w.add(
                CONSUMER,
                self._tags(topic=s.topic, partition=str(s.partition), group=s.group),
                {"lag_messages": s.lag_messages},
                ts,
            )

    def throughput(
        self, stage: str, messages: int, elapsed_s: float, ts_ms: int | None = None
    ) -> None:
        """One processed batch of ``stage``: its size and how long it took."""
        if self._w is None:
            return
        fields: dict[str, float | int | bool] = {"messages": messages, "busy_s": elapsed_s}
        if elapsed_s > 0:
            fields["msg_per_s"] = messages / elapsed_s
        self._w.add(THROUGHPUT, self._tags(stage=stage), fields, self._ts(ts_ms))

    def event_loop(self, lag_max_ms: float, lag_mean_ms: float, samples: int,
                   ts_ms: int | None = None) -> None:
        """How late the worker's event loop ran over one report interval (gauges)."""
        if self._w is None or samples == 0:
            return
        self._w.add(EVENT_LOOP, self._tags(),
                    {"lag_max_ms": lag_max_ms, "lag_mean_ms": lag_mean_ms, "samples": samples},
                    self._ts(ts_ms))

    def flush(self) -> None:
        if self._w is not None:
            self._w.flush()

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
