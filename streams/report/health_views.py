"""The two health dashboards (estimator health, pipeline health); the carbon, budget and SLO
views are in ``views``, which lists all five."""

from __future__ import annotations

from streams.report import flux as fx
from streams.report.dashboard import G_PER_KWH, Dashboard, Offenders, Panel, Query

ESTIMATORS = Dashboard(
    uid="gar-estimators",
    title="GAR: grid intensity and estimator health",
    description="Grid carbon intensity per zone with its age and staleness, and the "
    "estimators' error per candidate.",
    variables=("model", "region", "dataset", "worker"),
    panels=(
        Panel(
            "Grid carbon intensity per zone",
            (Query(fx.last_per_window("gar_intensity", "g_per_kwh", ["zone"]), "{zone}"),),
            unit=G_PER_KWH,
            description="The intensity the router priced each zone at (gCO2eq/kWh).",
        ),
        Panel(
            "Intensity age per zone",
            (Query(fx.last_per_window("gar_intensity", "age_s", ["zone"], fn="max"), "{zone}"),),
            unit="s",
            description="How old the zone's reading was when a decision used it.",
        ),
        Panel(
            "Stale zones (1 = priced with a stale reading)",
            (
                Query(
                    fx.last_per_window(
                        "gar_intensity", "stale", ["zone"], fn="max", as_number=True
                    ),
                    "{zone}",
                ),
            ),
            offenders=Offenders("zones stale", "zone", "above", 0.5),
        ),
        Panel(
            "Zones stale now",
            (Query(fx.count_last_true("gar_intensity", "stale", ["zone"]), "stale zones"),),
            kind="stat",
        ),
        Panel(
            "Accuracy estimate error (est − obs)",
            (
                Query(
                    fx.last_per_window(
                        "gar_estimator_accuracy", "error", ["model", "dataset"], fn="mean"
                    ),
                    "{model} {dataset}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "p95 latency estimate error (est − obs)",
            (
                Query(
                    fx.last_per_window(
                        "gar_estimator_latency", "p95_error_ms", ["model", "region"], fn="mean"
                    ),
                    "{model} @ {region}",
                ),
            ),
            unit="ms",
        ),
        Panel(
            "Energy per token: estimated vs observed",
            (
                Query(
                    fx.last_per_window(
                        "gar_estimator_energy", "est_j_per_token", ["model"], fn="mean"
                    ),
                    "{model} est",
                ),
                Query(
                    fx.last_per_window(
                        "gar_estimator_energy", "obs_j_per_token", ["model"], fn="mean"
                    ),
                    "{model} obs",
                ),
            ),
            unit="joule",
        ),
    ),
)

PIPELINE = Dashboard(
    uid="gar-pipeline",
    title="GAR: pipeline health",
    description="Throughput, consumer lag, dead letters and the metrics writer itself.",
    variables=("worker",),
    panels=(
        Panel(
            "Throughput by stage",
            (Query(fx.rate_per_window("gar_throughput", "messages", ["stage"]), "{stage}"),),
            unit="reqps",
        ),
        Panel(
            "Batch processing rate by stage",
            (
                Query(
                    fx.last_per_window("gar_throughput", "msg_per_s", ["stage"], fn="mean"),
                    "{stage}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Consumer lag by topic",
            (
                Query(
                    fx.sum_of_latest_per_window("gar_consumer", "lag_messages", ["topic"]),
                    "{topic}",
                ),
                # Above the lag for long: a record was read and never processed.
                Query(
                    fx.sum_of_latest_per_window("gar_consumer", "uncommitted_messages", ["topic"]),
                    "{topic} uncommitted",
                ),
            ),
        ),
        Panel(
            "Dead letters by reason",
            (
                Query(
                    fx.sum_per_window("gar_dead_letters", "count", ["stage", "reason"]),
                    "{stage}: {reason}",
                ),
            ),
            stacked=True,
        ),
        Panel(
            "Dead letters (range)",
            (Query(fx.sum_over_range("gar_dead_letters", "count"), "dead letters"),),
            kind="stat",
        ),
        Panel(
            "Metrics points dropped (cumulative, per worker)",
            (
                Query(
                    fx.last_per_window("gar_metrics_writer", "dropped_points", ["worker"]),
                    "{worker}",
                ),
            ),
        ),
        Panel(
            "Metrics buffer",
            (
                Query(
                    fx.last_per_window("gar_metrics_writer", "buffered_points", ["worker"]),
                    "{worker}",
                ),
            ),
        ),
        Panel(
            "Event-loop lag (worst wake-up per report, per worker)",
            (
                Query(
                    fx.last_per_window("gar_event_loop", "lag_max_ms", ["worker"], fn="max"),
                    "{worker} max",
                ),
                Query(
                    fx.last_per_window("gar_event_loop", "lag_mean_ms", ["worker"], fn="max"),
                    "{worker} mean",
                ),
            ),
            unit="ms",
        ),
    ),
)
