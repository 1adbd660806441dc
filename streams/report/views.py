"""The operational views, defined once: Grafana dashboards and ``gar report`` both come from here.

Each query is Flux (``streams.report.flux``) against InfluxDB. Counters are per-batch deltas,
so "how many in each interval" is a windowed ``sum``; gauges are the last value in a window.
A query's ``role="threshold"`` marks a series that is a limit to compare against (a floor, the
SLO, a budget): Grafana draws it dashed, and so does the report.
"""

from __future__ import annotations

from streams.report import flux as fx
from streams.report.dashboard import Dashboard, Offenders, Panel, Query
from streams.report.health_views import ESTIMATORS, PIPELINE

__all__ = ["DASHBOARDS", "Dashboard", "Offenders", "Panel", "Query"]


CARBON = Dashboard(
    uid="gar-carbon",
    title="GAR: carbon overview",
    description="CO2 per request and in total, by model and region, against always-largest.",
    variables=("tenant", "model", "region", "worker"),
    panels=(
        Panel(
            "Total CO2 (estimated, range)",
            (Query(fx.sum_over_range("gar_decisions", "co2_est_g"), "estimated"),),
            unit="massg",
            kind="stat",
        ),
        Panel(
            "CO2 per request (range)",
            (
                Query(fx.ratio_over_range("gar_decisions", "co2_est_g", "count"), "estimated"),
                Query(
                    fx.ratio_over_range("gar_completions", "co2_realised_g", "co2_realised_count"),
                    "realised",
                ),
            ),
            unit="massg",
            kind="stat",
        ),
        Panel(
            "CO2 saved vs always-largest (range)",
            (
                Query(
                    fx.ratio_over_range(
                        "gar_decisions", "co2_est_g", "co2_baseline_g", minus_from_one=True
                    ),
                    "saved",
                ),
            ),
            unit="percentunit",
            kind="stat",
            description="1 - CO2 of the choices / CO2 the always-largest rule would have "
            "emitted for the same requests (estimates at decision time).",
        ),
        Panel(
            "Requests decided (range)",
            (Query(fx.sum_over_range("gar_decisions", "count"), "decisions"),),
            kind="stat",
        ),
        Panel(
            "CO2 per request: estimated vs realised vs always-largest",
            (
                Query(fx.ratio_per_window("gar_decisions", "co2_est_g", "count"), "estimated"),
                Query(
                    fx.ratio_per_window("gar_completions", "co2_realised_g", "co2_realised_count"),
                    "realised",
                ),
                Query(
                    fx.ratio_per_window("gar_decisions", "co2_baseline_g", "baseline_count"),
                    "always-largest",
                    role="threshold",
                ),
            ),
            unit="massg",
        ),
        Panel(
            "CO2 per request by model",
            (
                Query(
                    fx.ratio_per_window("gar_decisions", "co2_est_g", "count", ["model"]),
                    "{model}",
                ),
            ),
            unit="massg",
        ),
        Panel(
            "CO2 per request by region",
            (
                Query(
                    fx.ratio_per_window("gar_decisions", "co2_est_g", "count", ["region"]),
                    "{region}",
                ),
            ),
            unit="massg",
        ),
        Panel(
            "CO2 per interval by model",
            (Query(fx.sum_per_window("gar_decisions", "co2_est_g", ["model"]), "{model}"),),
            unit="massg",
            stacked=True,
        ),
        Panel(
            "CO2 per interval by region",
            (Query(fx.sum_per_window("gar_decisions", "co2_est_g", ["region"]), "{region}"),),
            unit="massg",
            stacked=True,
        ),
        Panel(
            "Decisions by model and region",
            (
                Query(
                    fx.sum_per_window("gar_decisions", "count", ["model", "region"]),
                    "{model} @ {region}",
                ),
            ),
            stacked=True,
        ),
        Panel(
            "Decisions by reason",
            (Query(fx.sum_per_window("gar_decisions", "count", ["reason"]), "{reason}"),),
            stacked=True,
        ),
    ),
)

BUDGETS = Dashboard(
    uid="gar-budgets",
    title="GAR: budgets and duals",
    description="Rolling carbon spend against budget per tenant, and the dual variables.",
    variables=("tenant", "dataset", "worker"),
    panels=(
        Panel(
            "Rolling spend vs budget per tenant",
            (
                Query(fx.last_per_window("gar_budget", "spend_g", ["tenant"]), "{tenant} spend"),
                Query(
                    fx.last_per_window("gar_budget", "budget_g", ["tenant"]),
                    "{tenant} budget",
                    role="threshold",
                ),
            ),
            unit="massg",
            description="Spend in the rolling window after the tenant's latest decision.",
        ),
        Panel(
            "Budget used per tenant",
            (Query(fx.last_per_window("gar_budget", "used_ratio", ["tenant"]), "{tenant}"),),
            unit="percentunit",
            threshold=1.0,
            offenders=Offenders("tenants over budget", "tenant", "above", 1.0),
        ),
        Panel(
            "Tenants over budget now",
            (Query(fx.count_last_above("gar_budget", "used_ratio", ["tenant"], 1.0), "tenants"),),
            kind="stat",
        ),
        Panel(
            "λ carbon price per tenant",
            (Query(fx.last_per_window("gar_duals", "lambda", ["tenant"]), "{tenant}"),),
            description="Rises while a tenant spends ahead of its budget.",
        ),
        Panel(
            "μ accuracy price per tenant and dataset",
            (
                Query(
                    fx.last_per_window(
                        "gar_duals", "mu", ["tenant", "dataset"], extra_variables=("dataset",)
                    ),
                    "{tenant} {dataset}",
                ),
            ),
            description="Rises while accuracy on the dataset runs under its floor.",
        ),
        Panel(
            "ν latency price per tenant",
            (Query(fx.last_per_window("gar_duals", "nu", ["tenant"]), "{tenant}"),),
        ),
    ),
)

SLO = Dashboard(
    uid="gar-slo",
    title="GAR: SLO and accuracy",
    description="Latency against the SLO, request-to-decision latency, and accuracy against "
    "the floor per dataset (realised and estimated).",
    variables=("tenant", "model", "region", "dataset", "worker"),
    panels=(
        Panel(
            "SLO violation rate (range)",
            (
                Query(
                    fx.ratio_over_range("gar_completions", "slo_violations", "count"),
                    "violations",
                ),
            ),
            unit="percentunit",
            kind="stat",
        ),
        Panel(
            "Realised accuracy (range)",
            (
                Query(
                    fx.ratio_over_range("gar_accuracy", "correct_count", "graded_count"),
                    "realised",
                ),
            ),
            unit="percentunit",
            kind="stat",
        ),
        Panel(
            "Observed p95 latency per candidate vs SLO",
            (
                Query(
                    fx.last_per_window(
                        "gar_estimator_latency", "p95_obs_ms", ["model", "region"], fn="max"
                    ),
                    "{model} @ {region}",
                ),
                Query(
                    fx.last_per_window("gar_policy", "latency_slo_ms", [], fn="max"),
                    "SLO",
                    role="threshold",
                ),
            ),
            unit="ms",
            offenders=Offenders("candidates over the SLO", "model", "above_threshold"),
            description="p95 of the completions of one telemetry batch (at least 20 of the "
            "candidate), against the p95 SLO in force.",
        ),
        Panel(
            "Request-to-decision latency",
            (
                Query(fx.histogram_quantile("gar_decision_latency", 0.5), "p50"),
                Query(fx.histogram_quantile("gar_decision_latency", 0.95), "p95"),
                Query(fx.histogram_quantile("gar_decision_latency", 0.99), "p99"),
            ),
            unit="ms",
            description="From the request's append to the requests topic to its decision "
            "acknowledged on the decisions topic (histogram over every worker).",
        ),
        Panel(
            "Realised accuracy vs floor per dataset",
            (
                Query(
                    fx.ratio_per_window(
                        "gar_accuracy", "correct_count", "graded_count", ["dataset"]
                    ),
                    "{dataset}",
                ),
                Query(
                    fx.last_per_window("gar_accuracy", "floor", ["dataset"]),
                    "{dataset} floor",
                    role="threshold",
                ),
            ),
            unit="percentunit",
            offenders=Offenders("datasets under their floor", "dataset", "below_threshold"),
            description="Graded completions per interval; the floor is the effective floor "
            "of the dataset's latest decision. Floors are met on average over a window, so "
            "single intervals may dip under.",
        ),
        Panel(
            "Estimated accuracy of the choices vs floor per dataset",
            (
                Query(
                    fx.ratio_per_window(
                        "gar_accuracy", "accuracy_est_sum", "decisions", ["dataset"]
                    ),
                    "{dataset}",
                ),
                Query(
                    fx.last_per_window("gar_accuracy", "floor", ["dataset"]),
                    "{dataset} floor",
                    role="threshold",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "SLO violation rate by model and region",
            (
                Query(
                    fx.ratio_per_window(
                        "gar_completions", "slo_violations", "count", ["model", "region"]
                    ),
                    "{model} @ {region}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Mean completion latency by model",
            (
                Query(
                    fx.ratio_per_window("gar_completions", "latency_ms_sum", "count", ["model"]),
                    "{model}",
                ),
            ),
            unit="ms",
        ),
        Panel(
            "Realised accuracy by model",
            (
                Query(
                    fx.ratio_per_window(
                        "gar_completions", "correct_count", "graded_count", ["model"]
                    ),
                    "{model}",
                ),
            ),
            unit="percentunit",
        ),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (CARBON, BUDGETS, SLO, ESTIMATORS, PIPELINE)
