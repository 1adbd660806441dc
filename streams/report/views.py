"""The operational views, defined once: Grafana dashboards and ``gar report`` both come from here.

Each query is PromQL/MetricsQL against VictoriaMetrics. Counters are per-batch deltas, so a
time series of "how many in each interval" is ``sum_over_time(x[$__interval])`` and a rate is
that divided by the interval; gauges use ``last_over_time`` so a scrape gap shows as a gap.
Grafana fills ``$__interval``/``$__interval_ms``/``$__range``; ``substitute`` does the same for
the report and the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

PanelKind = Literal["timeseries", "stat", "bargauge"]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"  # a Grafana unit id
    kind: PanelKind = "timeseries"
    description: str = ""
    stacked: bool = False


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)
    variables: tuple[str, ...] = ()
    """Template variables (label names) every query of the dashboard is filtered by."""


# Series that carry a tenant tag, and the selector a ``$tenant`` filter is added to.
_TENANT_SERIES = re.compile(r"\b(gar_(?:decisions|completions|budget|duals)_\w+)(\{([^}]*)\})?")
VARIABLE_SOURCE = {"tenant": "gar_decisions_count"}


def _filter_tenant(expr: str) -> str:
    def add(m: re.Match[str]) -> str:
        inner = m.group(3)
        labels = f'{inner},tenant=~"$tenant"' if inner else 'tenant=~"$tenant"'
        return f"{m.group(1)}{{{labels}}}"

    return _TENANT_SERIES.sub(add, expr)


def tenant_scoped(d: Dashboard) -> Dashboard:
    """The dashboard with a multi-select ``tenant`` variable applied to every tenant series."""
    panels = tuple(
        replace(p, queries=tuple(replace(q, expr=_filter_tenant(q.expr)) for q in p.queries))
        for p in d.panels
    )
    return replace(d, panels=panels, variables=(*d.variables, "tenant"))


def _per_interval(series: str, by: str = "") -> str:
    group = f" by ({by})" if by else ""
    return f"sum{group} (sum_over_time({series}[$__interval]))"


def _ratio(num: str, den: str, by: str = "", window: str = "$__interval") -> str:
    group = f" by ({by})" if by else ""
    return (
        f"sum{group} (sum_over_time({num}[{window}])) / sum{group} (sum_over_time({den}[{window}]))"
    )


def _last(series: str, by: str, agg: str = "max") -> str:
    return f"{agg} by ({by}) (last_over_time({series}[$__interval]))"


CARBON = Dashboard(
    uid="gar-carbon",
    title="GAR: carbon overview",
    description="CO2 per request and in total, by model and region, against always-largest.",
    panels=(
        Panel(
            "Total CO2 (estimated, range)",
            (Query("sum(sum_over_time(gar_decisions_co2_est_g[$__range]))", "estimated"),),
            unit="massg",
            kind="stat",
        ),
        Panel(
            "CO2 saved vs always-largest (range)",
            (
                Query(
                    "1 - sum(sum_over_time(gar_decisions_co2_est_g[$__range]))"
                    " / sum(sum_over_time(gar_decisions_co2_baseline_g[$__range]))",
                    "saved",
                ),
            ),
            unit="percentunit",
            kind="stat",
            description="Only decisions that recorded a baseline estimate count here.",
        ),
        Panel(
            "CO2 per request: estimated vs realised vs always-largest",
            (
                Query(_ratio("gar_decisions_co2_est_g", "gar_decisions_count"), "estimated"),
                Query(
                    _ratio("gar_completions_co2_realised_g", "gar_completions_co2_realised_count"),
                    "realised",
                ),
                Query(
                    _ratio("gar_decisions_co2_baseline_g", "gar_decisions_baseline_count"),
                    "always-largest",
                ),
            ),
            unit="massg",
        ),
        Panel(
            "CO2 per interval by model",
            (Query(_per_interval("gar_decisions_co2_est_g", "model"), "{{model}}"),),
            unit="massg",
            stacked=True,
        ),
        Panel(
            "CO2 per interval by region",
            (Query(_per_interval("gar_decisions_co2_est_g", "region"), "{{region}}"),),
            unit="massg",
            stacked=True,
        ),
        Panel(
            "CO2 per request by model",
            (
                Query(
                    _ratio("gar_decisions_co2_est_g", "gar_decisions_count", "model"), "{{model}}"
                ),
            ),
            unit="massg",
        ),
        Panel(
            "Decisions by model and region",
            (
                Query(
                    _per_interval("gar_decisions_count", "model, region"), "{{model}} @ {{region}}"
                ),
            ),
            stacked=True,
        ),
        Panel(
            "Decisions by reason",
            (Query(_per_interval("gar_decisions_count", "reason"), "{{reason}}"),),
            stacked=True,
        ),
    ),
)

BUDGETS = Dashboard(
    uid="gar-budgets",
    title="GAR: budgets and duals",
    description="Rolling carbon spend against budget per tenant, and the dual variables.",
    panels=(
        Panel(
            "Rolling spend vs budget",
            (
                Query(_last("gar_budget_spend_g", "tenant"), "{{tenant}} spend"),
                Query(_last("gar_budget_budget_g", "tenant"), "{{tenant}} budget"),
            ),
            unit="massg",
        ),
        Panel(
            "Budget used",
            (Query(_last("gar_budget_used_ratio", "tenant"), "{{tenant}}"),),
            unit="percentunit",
        ),
        Panel(
            "Tenants over budget now",
            (
                Query(
                    "count(last_over_time(gar_budget_used_ratio[$__range]) > 1) or vector(0)",
                    "tenants",
                ),
            ),
            kind="stat",
        ),
        Panel(
            "λ carbon price",
            (Query(_last('gar_duals_value{dual="lambda"}', "tenant"), "{{tenant}}"),),
        ),
        Panel(
            "μ accuracy price by dataset",
            (
                Query(
                    _last('gar_duals_value{dual="mu"}', "tenant, dataset"), "{{tenant}} {{dataset}}"
                ),
            ),
        ),
        Panel(
            "ν latency price",
            (Query(_last('gar_duals_value{dual="nu"}', "tenant"), "{{tenant}}"),),
        ),
    ),
)

SLO = Dashboard(
    uid="gar-slo",
    title="GAR: SLO and accuracy",
    description="Latency SLO compliance and accuracy, estimated at decision time vs observed.",
    panels=(
        Panel(
            "SLO violation rate (range)",
            (
                Query(
                    _ratio(
                        "gar_completions_slo_violations", "gar_completions_count", window="$__range"
                    ),
                    "violations",
                ),
            ),
            unit="percentunit",
            kind="stat",
        ),
        Panel(
            "SLO violation rate by model and region",
            (
                Query(
                    _ratio(
                        "gar_completions_slo_violations", "gar_completions_count", "model, region"
                    ),
                    "{{model}} @ {{region}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Observed p95 latency per candidate",
            (
                Query(
                    _last("gar_estimator_latency_p95_obs_ms", "model, region"),
                    "{{model}} @ {{region}}",
                ),
            ),
            unit="ms",
        ),
        Panel(
            "Mean latency of completions by model",
            (
                Query(
                    _ratio("gar_completions_latency_ms_sum", "gar_completions_count", "model"),
                    "{{model}}",
                ),
            ),
            unit="ms",
        ),
        Panel(
            "Accuracy: estimated at decision vs observed",
            (
                Query(
                    _ratio("gar_decisions_accuracy_est_sum", "gar_decisions_count"),
                    "estimated (chosen)",
                ),
                Query(
                    _ratio("gar_completions_correct_count", "gar_completions_graded_count"),
                    "observed",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Observed accuracy by model",
            (
                Query(
                    _ratio(
                        "gar_completions_correct_count", "gar_completions_graded_count", "model"
                    ),
                    "{{model}}",
                ),
            ),
            unit="percentunit",
        ),
    ),
)

ESTIMATORS = Dashboard(
    uid="gar-estimators",
    title="GAR: estimator health",
    description="Estimator error per candidate and the grid-intensity inputs with their age.",
    panels=(
        Panel(
            "Accuracy estimate error (est − obs)",
            (
                Query(
                    _last("gar_estimator_accuracy_error", "model, dataset", "avg"),
                    "{{model}} {{dataset}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "p95 latency estimate error (est − obs)",
            (
                Query(
                    _last("gar_estimator_latency_p95_error_ms", "model, region", "avg"),
                    "{{model}} @ {{region}}",
                ),
            ),
            unit="ms",
        ),
        Panel(
            "Energy per token: estimated vs observed",
            (
                Query(
                    _last("gar_estimator_energy_est_j_per_token", "model", "avg"), "{{model}} est"
                ),
                Query(
                    _last("gar_estimator_energy_obs_j_per_token", "model", "avg"), "{{model}} obs"
                ),
            ),
            unit="joule",
        ),
        Panel(
            "Grid intensity per zone",
            (Query(_last("gar_intensity_g_per_kwh", "zone"), "{{zone}}"),),
            unit="none",
            description="gCO2eq/kWh",
        ),
        Panel(
            "Grid intensity age per zone",
            (Query(_last("gar_intensity_age_s", "zone"), "{{zone}}"),),
            unit="s",
        ),
        Panel(
            "Zones stale now",
            (Query("sum(last_over_time(gar_intensity_stale[$__range]))", "stale zones"),),
            kind="stat",
        ),
    ),
)

PIPELINE = Dashboard(
    uid="gar-pipeline",
    title="GAR: pipeline health",
    description="Throughput, consumer lag, dead letters and the metrics writer itself.",
    panels=(
        Panel(
            "Throughput by stage",
            (
                Query(
                    _per_interval("gar_throughput_messages", "stage")
                    + " / ($__interval_ms / 1000)",
                    "{{stage}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Batch processing rate by stage",
            (Query(_last("gar_throughput_msg_per_s", "stage", "avg"), "{{stage}}"),),
            unit="reqps",
        ),
        Panel(
            "Consumer lag by topic",
            (
                Query(
                    "sum by (topic) (max_over_time(gar_consumer_lag_messages[$__interval]))",
                    "{{topic}}",
                ),
            ),
        ),
        Panel(
            "Dead letters by reason",
            (
                Query(
                    _per_interval("gar_dead_letters_count", "reason, stage"),
                    "{{stage}}: {{reason}}",
                ),
            ),
            stacked=True,
        ),
        Panel(
            "Metrics points dropped (cumulative, per worker)",
            (Query(_last("gar_metrics_writer_dropped_points", "worker"), "{{worker}}"),),
        ),
        Panel(
            "Metrics buffer",
            (Query(_last("gar_metrics_writer_buffered_points", "worker"), "{{worker}}"),),
        ),
        Panel(
            "Event-loop lag (worst wake-up per report, per worker)",
            (
                Query(_last("gar_event_loop_lag_max_ms", "worker", "max"), "{{worker}} max"),
                Query(_last("gar_event_loop_lag_mean_ms", "worker", "max"), "{{worker}} mean"),
            ),
            unit="ms",
        ),
    ),
)

CARBON = tenant_scoped(CARBON)
BUDGETS = tenant_scoped(BUDGETS)
SLO = tenant_scoped(SLO)
DASHBOARDS: tuple[Dashboard, ...] = (CARBON, BUDGETS, SLO, ESTIMATORS, PIPELINE)


def substitute(
    expr: str, interval_s: float, range_s: float, variables: dict[str, str] | None = None
) -> str:
    """Fill Grafana's built-in variables the way Grafana does for a given step and range;
    template variables default to "All" (``.*``)."""
    interval = f"{max(int(interval_s), 1)}s"
    for name in VARIABLE_SOURCE:
        expr = expr.replace(f"${name}", (variables or {}).get(name, ".*"))
    return (
        expr.replace("$__interval_ms", str(max(int(interval_s), 1) * 1000))
        .replace("$__interval", interval)
        .replace("$__range", f"{max(int(range_s), 1)}s")
    )
