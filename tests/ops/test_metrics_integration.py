"""The real writer against the real store: every measurement of the catalogue reads back."""

from __future__ import annotations

import time

import pytest

from streams.config import InfluxSettings
from streams.metrics import build_metrics
from streams.metrics.query import PromClient

from .sample_run import CANDIDATES, TENANTS, TICKS, write_sample_run

pytestmark = pytest.mark.integration

EXPECTED_SERIES = {
    "gar_decisions_count",
    "gar_decisions_co2_est_g",
    "gar_decisions_co2_baseline_g",
    "gar_decisions_accuracy_est_sum",
    "gar_decisions_latency_p95_est_ms_sum",
    "gar_completions_count",
    "gar_completions_co2_realised_g",
    "gar_completions_energy_j",
    "gar_completions_correct_count",
    "gar_completions_graded_count",
    "gar_completions_slo_violations",
    "gar_completions_latency_ms_sum",
    "gar_budget_spend_g",
    "gar_budget_budget_g",
    "gar_budget_used_ratio",
    "gar_duals_value",
    "gar_estimator_accuracy_est",
    "gar_estimator_accuracy_obs",
    "gar_estimator_accuracy_error",
    "gar_estimator_latency_p95_est_ms",
    "gar_estimator_latency_p95_obs_ms",
    "gar_estimator_energy_est_j_per_token",
    "gar_estimator_energy_obs_j_per_token",
    "gar_intensity_g_per_kwh",
    "gar_intensity_age_s",
    "gar_intensity_stale",
    "gar_dead_letters_count",
    "gar_consumer_lag_messages",
    "gar_throughput_messages",
    "gar_throughput_msg_per_s",
    "gar_metrics_writer_dropped_points",
    "gar_metrics_writer_written_points",
}


def test_every_measurement_reads_back(
    prom: PromClient, influx_settings: InfluxSettings, run_id: str
) -> None:
    metrics = build_metrics(influx_settings)
    end_ms = int(time.time() * 1000)
    write_sample_run(metrics, end_ms)
    metrics.close()
    stats = metrics.writer.stats() if metrics.writer else None
    assert stats is not None and stats.dropped_points == 0
    prom.force_flush()

    names = set(prom.series_names(f'{{worker="{run_id}"}}'))
    assert names >= EXPECTED_SERIES, EXPECTED_SERIES - names

    at_s = end_ms / 1000
    sel = f'worker="{run_id}"'
    # counts are per-batch deltas: the sum over the run equals what was routed
    total = prom.query(f"sum(sum_over_time(gar_decisions_count{{{sel}}}[1h]))", at_s)
    expected = sum(
        5 + tick + 3 * c + t
        for tick in range(TICKS)
        for t in range(len(TENANTS))
        for c in range(len(CANDIDATES))
    )
    assert total[0].values == [expected]
    # one series per (tenant, model, region, reason, policy)
    per_group = prom.query(f"count(last_over_time(gar_decisions_count{{{sel}}}[1h]))", at_s)
    assert per_group[0].values == [len(TENANTS) * len(CANDIDATES)]
    # the string-free categorical design: dual and dataset are tags
    mu = prom.query(
        f'last_over_time(gar_duals_value{{{sel},dual="mu",dataset="gsm8k",tenant="acme"}}[1h])',
        at_s,
    )
    assert mu[0].values == pytest.approx([0.1 * (TICKS - 1)])
    spend = prom.query_range(
        f'gar_budget_spend_g{{{sel},tenant="globex"}}', (end_ms - 20 * 60_000) / 1000, at_s, 60
    )
    assert max(spend[0].values) == pytest.approx(10.0 * TICKS * 2)
