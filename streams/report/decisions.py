"""The same views computed from decision records (the decisions topic), for runs without a
metrics store. Only what a decision record holds can be shown: estimates at decision time,
duals, budget windows and the intensity used; completions (observed outcomes) are not here.
Time is the records' event time, bucketed by ``step_ms``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from streams.metrics.decision_metrics import LargestBaseline, number
from streams.report.figures import Line, PanelData, ViewData

Rec = dict[str, Any]
KeyFn = Callable[[Rec], str | None]
ValFn = Callable[[Rec], float | None]


def _series(recs: Iterable[Rec], step_ms: float, key: KeyFn, value: ValFn, how: str) -> list[Line]:
    """Per key, per time bucket: sum | mean | last of value."""
    acc: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in recs:
        ts, k, v = r.get("ts_ms"), key(r), value(r)
        if isinstance(ts, int) and k is not None and v is not None:
            acc[k][int(ts // step_ms)].append(v)
    lines = []
    for k, buckets in acc.items():
        xs = sorted(buckets)
        agg = {"sum": sum, "mean": lambda v: sum(v) / len(v), "last": lambda v: v[-1]}[how]
        lines.append(Line(k, [b * step_ms / 1000 for b in xs], [agg(buckets[b]) for b in xs]))
    return lines


def _const(name: str) -> KeyFn:
    return lambda _r: name


def _field(name: str) -> KeyFn:
    return lambda r: str(r.get(name))


def _path(*keys: str) -> ValFn:
    def get(r: Rec) -> float | None:
        v: Any = r
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        return number(v)

    return get


def _spend_after(r: Rec) -> float | None:
    before, co2 = number(r.get("window_spend_g_before")), number(r.get("co2_g"))
    return None if before is None or co2 is None else before + co2


def _ratio(pred: Callable[[Rec], bool | None]) -> ValFn:
    def get(r: Rec) -> float | None:
        ok = pred(r)
        return None if ok is None else float(ok)

    return get


def _meets(a: str, b: str, le: bool) -> Callable[[Rec], bool | None]:
    def pred(r: Rec) -> bool | None:
        x, y = number(r.get(a)), number(r.get(b))
        if x is None or y is None:
            return None
        return x <= y if le else x >= y

    return pred


def _stat(title: str, unit: str, values: dict[str, float]) -> PanelData:
    return PanelData(title, unit, "stat", stats=values)


def _ts(title: str, unit: str, lines: list[Line], stacked: bool = False) -> PanelData:
    return PanelData(title, unit, "timeseries", lines=lines, stacked=stacked)


def views_from_decisions(
    records: list[Rec], step_ms: float, baseline: LargestBaseline | None = None
) -> list[ViewData]:
    """``baseline`` (needs the catalog) adds the always-largest comparison to the carbon view."""
    recs = [r for r in records if isinstance(r.get("ts_ms"), int)]
    co2 = sum(number(r.get("co2_g")) or 0.0 for r in recs)
    base: dict[str, float] = {}
    per_request = _series(recs, step_ms, _const("estimated"), _path("co2_g"), "mean")
    if baseline is not None:
        with_base = [(r, b) for r in recs if (b := baseline.co2_g(r)) is not None]
        total_b = sum(b for _, b in with_base)
        if total_b > 0:
            base["saved"] = 1.0 - sum(number(r.get("co2_g")) or 0.0 for r, _ in with_base) / total_b
        per_request += _series(recs, step_ms, _const("always-largest"), baseline.co2_g, "mean")
    return [
        _carbon_view(recs, step_ms, co2, base, per_request),
        _budget_view(recs, step_ms),
        _slo_view(recs, step_ms),
        _grid_view(recs, step_ms),
        _pipeline_view(recs, step_ms),
    ]


def _carbon_view(
    recs: list[Rec], step_ms: float, co2: float, base: dict[str, float], per_request: list[Line]
) -> ViewData:
    n = len(recs)
    model_region: KeyFn = lambda r: f"{r.get('model')} @ {r.get('region')}"  # noqa: E731
    return ViewData(
        "gar-carbon",
        "GAR: carbon overview (from decisions)",
        "CO2 estimated at decision time, by model and region.",
        [
            _stat("Total CO2 (estimated, range)", "massg", {"estimated": co2} if n else {}),
            _stat("CO2 per request (range)", "massg", {"estimated": co2 / n} if n else {}),
            _stat("CO2 saved vs always-largest (range)", "percentunit", base),
            _ts("CO2 per request: estimated vs always-largest", "massg", per_request),
            _ts(
                "CO2 per interval by model",
                "massg",
                _series(recs, step_ms, _field("model"), _path("co2_g"), "sum"),
                True,
            ),
            _ts(
                "CO2 per interval by region",
                "massg",
                _series(recs, step_ms, _field("region"), _path("co2_g"), "sum"),
                True,
            ),
            _ts(
                "Decisions by model and region",
                "short",
                _series(recs, step_ms, model_region, lambda _r: 1.0, "sum"),
                True,
            ),
            _ts(
                "Decisions by reason",
                "short",
                _series(recs, step_ms, _field("reason"), lambda _r: 1.0, "sum"),
                True,
            ),
        ],
    )


def _budget_view(recs: list[Rec], step_ms: float) -> ViewData:
    return ViewData(
        "gar-budgets",
        "GAR: budgets and duals (from decisions)",
        "Rolling window spend after each decision and the duals after it.",
        [
            _ts(
                "Rolling spend vs budget",
                "massg",
                _series(recs, step_ms, lambda r: f"{r.get('tenant')} spend", _spend_after, "last")
                + _series(
                    recs, step_ms, lambda r: f"{r.get('tenant')} budget", _path("budget_g"), "last"
                ),
            ),
            _ts(
                "λ carbon price",
                "short",
                _series(recs, step_ms, _field("tenant"), _path("duals_after", "lambda"), "last"),
            ),
            _ts(
                "μ accuracy price by dataset",
                "short",
                _series(
                    recs,
                    step_ms,
                    lambda r: f"{r.get('tenant')} {r.get('dataset')}",
                    _path("duals_after", "mu"),
                    "last",
                ),
            ),
            _ts(
                "ν latency price",
                "short",
                _series(recs, step_ms, _field("tenant"), _path("duals_after", "nu"), "last"),
            ),
        ],
    )


def _slo_view(recs: list[Rec], step_ms: float) -> ViewData:
    return ViewData(
        "gar-slo",
        "GAR: SLO and accuracy (from decisions)",
        "Estimates of the chosen candidate against the request's cap and floor.",
        [
            _ts(
                "Share of decisions within the latency cap (estimated)",
                "percentunit",
                _series(
                    recs,
                    step_ms,
                    _const("within cap"),
                    _ratio(_meets("latency_p95_ms_est", "latency_cap_ms", True)),
                    "mean",
                ),
            ),
            _ts(
                "Share of decisions meeting the floor (estimated)",
                "percentunit",
                _series(
                    recs,
                    step_ms,
                    _const("meets floor"),
                    _ratio(_meets("accuracy_est", "floor", False)),
                    "mean",
                ),
            ),
            _ts(
                "Estimated p95 latency of the choice by model",
                "ms",
                _series(recs, step_ms, _field("model"), _path("latency_p95_ms_est"), "mean"),
            ),
            _ts(
                "Estimated accuracy of the choice vs floor",
                "percentunit",
                _series(recs, step_ms, _const("accuracy (chosen)"), _path("accuracy_est"), "mean")
                + _series(recs, step_ms, _const("floor"), _path("floor"), "mean"),
            ),
        ],
    )


def _grid_view(recs: list[Rec], step_ms: float) -> ViewData:
    return ViewData(
        "gar-estimators",
        "GAR: grid inputs (from decisions)",
        "The intensity each decision priced, and how old it was.",
        [
            _ts(
                "Grid intensity used per zone",
                "none",
                _series(
                    recs,
                    step_ms,
                    lambda r: str((r.get("intensity") or {}).get("zone")),
                    _path("intensity", "intensity_g_per_kwh"),
                    "last",
                ),
            ),
            _ts(
                "Grid intensity age per zone",
                "s",
                _series(
                    recs,
                    step_ms,
                    lambda r: str((r.get("intensity") or {}).get("zone")),
                    lambda r: (
                        v / 1000 if (v := _path("intensity", "age_ms")(r)) is not None else None
                    ),
                    "last",
                ),
            ),
        ],
    )


def _pipeline_view(recs: list[Rec], step_ms: float) -> ViewData:
    return ViewData(
        "gar-pipeline",
        "GAR: decisions over event time",
        "How many decisions each interval of event time produced.",
        [
            _ts(
                "Decisions per interval by policy",
                "short",
                _series(recs, step_ms, _field("policy"), lambda _r: 1.0, "sum"),
                True,
            ),
        ],
    )
