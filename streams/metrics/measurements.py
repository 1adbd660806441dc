"""The typed metrics API: one method per measurement of the catalogue (docs/operations.md).

Callers hand over a whole batch; each method aggregates per tag set and writes one point per
group, so the cost per routed request is a dict update, not a line. InfluxDB schema: tags only
for bounded dimensions (tenant, model, region, zone, dataset, reason, stage, worker, ...), values
as fields, descriptive strings (a reading's source) as string fields, flags as booleans; never a
request id. Counters are per-batch deltas (``sum`` them over a window), gauges are last values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from streams.metrics.line import FieldValue, encode_with_head, head
from streams.metrics.samples import (
    AccuracySample,
    BudgetSample,
    CandidateSample,
    CompletionSample,
    DatasetDecisions,
    DecisionSample,
    DualSample,
    IntensitySample,
    LagSample,
)
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
ACCURACY = "gar_accuracy"
POLICY = "gar_policy"
DECISION_LATENCY = "gar_decision_latency"
REFUSED = "gar_refused_outputs"

# Upper bounds (ms) of the request-to-decision latency histogram; the last bucket is "+Inf".
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000)

__all__ = [
    "AccuracySample",
    "BudgetSample",
    "CandidateSample",
    "CompletionSample",
    "DatasetDecisions",
    "DecisionSample",
    "DualSample",
    "IntensitySample",
    "LagSample",
    "Metrics",
]

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
    ACCURACY,
    POLICY,
    DECISION_LATENCY,
)


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
                line_head = head(
                    DECISIONS,
                    self._tags(
                        tenant=tenant, model=model, region=region, reason=reason, policy=policy
                    ),
                )
                if len(heads) < _MAX_CACHED_HEADS:
                    heads[key] = line_head
            fields: dict[str, FieldValue] = {
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
        graded_by_dataset: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for s in samples:
            if s.correct is not None and s.dataset:
                ds = graded_by_dataset[s.dataset]
                ds[0] += int(s.correct)
                ds[1] += 1
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
            fields: dict[str, FieldValue] = {
                k: (int(v) if k in counts else v) for k, v in g.items()
            }
            self._w.add(
                COMPLETIONS, self._tags(tenant=tenant, model=model, region=region), fields, ts
            )
        for dataset, (correct, graded) in graded_by_dataset.items():
            self._w.add(
                ACCURACY,
                self._tags(dataset=dataset),
                {"correct_count": correct, "graded_count": graded},
                ts,
            )

    def dataset_decisions(
        self, samples: Iterable[DatasetDecisions], ts_ms: int | None = None
    ) -> None:
        """Per dataset: how many decisions, their estimated accuracy and the floor in force."""
        if self._w is None:
            return
        ts = self._ts(ts_ms)
        for s in samples:
            self._w.add(
                ACCURACY,
                self._tags(dataset=s.dataset),
                {"decisions": s.count, "accuracy_est_sum": s.accuracy_est_sum, "floor": s.floor},
                ts,
            )

    def policy(
        self, latency_slo_ms: float, budget_window_s: float, ts_ms: int | None = None
    ) -> None:
        """The thresholds the router works to, as series a dashboard can draw."""
        if self._w is None:
            return
        fields: dict[str, FieldValue] = {
            "latency_slo_ms": latency_slo_ms,
            "budget_window_s": budget_window_s,
        }
        self._w.add(POLICY, self._tags(), fields, self._ts(ts_ms))

    def decision_latency(
        self, bucket_counts: Sequence[int], sum_ms: float, max_ms: float, ts_ms: int | None = None
    ) -> None:
        """Request-to-decision latency over an interval: ``bucket_counts[i]`` requests took at
        most ``LATENCY_BUCKETS_MS[i]`` (the last entry: all of them, ``le="+Inf"``)."""
        if self._w is None or not bucket_counts or not bucket_counts[-1]:
            return
        ts = self._ts(ts_ms)
        bounds = [str(b) for b in LATENCY_BUCKETS_MS] + ["+Inf"]
        for le, n in zip(bounds, bucket_counts, strict=True):
            self._w.add(DECISION_LATENCY, self._tags(le=le), {"bucket": int(n)}, ts)
        self._w.add(
            DECISION_LATENCY,
            self._tags(),
            {"count": int(bucket_counts[-1]), "sum_ms": sum_ms, "max_ms": max_ms},
            ts,
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
            # lambda and nu are per tenant, mu per tenant and dataset: two series.
            self._w.add(
                DUALS,
                self._tags(tenant=s.tenant),
                {"lambda": s.lambda_carbon, "nu": s.nu_latency},
                ts,
            )
            for dataset, mu in s.mu_accuracy_by_dataset.items():
                self._w.add(DUALS, self._tags(tenant=s.tenant, dataset=dataset), {"mu": mu}, ts)

    # -- estimators ---------------------------------------------------------------------
    def accuracy(self, samples: Iterable[AccuracySample], ts_ms: int | None = None) -> None:
        if self._w is None:
            return
        ts = self._ts(ts_ms)
        for s in samples:
            fields: dict[str, FieldValue] = {"est": s.accuracy_est, "n_obs": s.n_obs}
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
            lat: dict[str, FieldValue] = {
                "p95_est_ms": s.latency_p95_est_ms,
                "n_obs": s.n_obs,
            }
            if s.latency_p95_obs_ms is not None:
                lat["p95_obs_ms"] = s.latency_p95_obs_ms
                lat["p95_error_ms"] = s.latency_p95_est_ms - s.latency_p95_obs_ms
            self._w.add(EST_LATENCY, tags, lat, ts)
            en: dict[str, FieldValue] = {"est_j_per_token": s.energy_est_j_per_token}
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
                self._tags(zone=s.zone),
                {
                    "g_per_kwh": s.intensity_g_per_kwh,
                    "age_s": s.age_s,
                    "stale": s.stale,
                    "estimated": s.estimated,
                    "source": s.source,
                    "signal_type": s.signal_type,
                },
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

    def refused_outputs(
        self,
        refused: Mapping[str, int],
        replaced: Mapping[str, int],
        dropped: Mapping[str, int],
        ts_ms: int | None = None,
    ) -> None:
        """Output records the broker refused since start, per topic: replaced or dropped."""
        if self._w is None or not refused:
            return
        ts = self._ts(ts_ms)
        for t, n in refused.items():
            fields: dict[str, FieldValue] = {"refused": n, "replaced": replaced.get(t, 0)}
            fields["dropped"] = dropped.get(t, 0)
            self._w.add(REFUSED, self._tags(topic=t), fields, ts)

    def consumer_lag(self, samples: Sequence[LagSample], ts_ms: int | None = None) -> None:
        if self._w is None:
            return
        ts = self._ts(ts_ms)
        for s in samples:
            fields: dict[str, FieldValue] = {"lag_messages": s.lag_messages}
            if s.uncommitted_messages is not None:
                fields["uncommitted_messages"] = s.uncommitted_messages
            self._w.add(
                CONSUMER,
                self._tags(topic=s.topic, partition=str(s.partition), group=s.group),
                fields,
                ts,
            )

    def throughput(
        self, stage: str, messages: int, elapsed_s: float, ts_ms: int | None = None
    ) -> None:
        """One processed batch of ``stage``: its size and how long it took."""
        if self._w is None:
            return
        fields: dict[str, FieldValue] = {"messages": messages, "busy_s": elapsed_s}
        if elapsed_s > 0:
            fields["msg_per_s"] = messages / elapsed_s
        self._w.add(THROUGHPUT, self._tags(stage=stage), fields, self._ts(ts_ms))

    def event_loop(
        self, lag_max_ms: float, lag_mean_ms: float, samples: int, ts_ms: int | None = None
    ) -> None:
        """How late the worker's event loop ran over one report interval (gauges)."""
        if self._w is None or samples == 0:
            return
        self._w.add(
            EVENT_LOOP,
            self._tags(),
            {"lag_max_ms": lag_max_ms, "lag_mean_ms": lag_mean_ms, "samples": samples},
            self._ts(ts_ms),
        )

    def flush(self) -> None:
        if self._w is not None:
            self._w.flush()

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
