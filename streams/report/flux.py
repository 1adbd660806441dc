"""Flux building blocks for the dashboards, and Grafana's interpolation of them.

Every query reads ``v.defaultBucket`` over ``v.timeRangeStart``..``v.timeRangeStop`` and windows
with ``v.windowPeriod``: Grafana's InfluxDB (Flux) datasource fills those in, and
``interpolate`` does the same for ``gar report`` and the tests, so the text in the dashboard JSON
is exactly what runs against the store. The queries stay within Flux 0.65 (InfluxDB 1.8), which
InfluxDB 2.x runs as well.

Template variables are multi-value with an "All" value of ``__all``; a query filters on
``${name:pipe}`` (values joined by ``|``), e.g. ``contains(value: r.tenant, set: ...)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

VARIABLES = ("tenant", "model", "region", "dataset", "worker")
ALL = "__all"

# Which template variables filter which measurement: the tags it carries.
MEASUREMENT_VARIABLES: dict[str, tuple[str, ...]] = {
    "gar_decisions": ("tenant", "model", "region", "worker"),
    "gar_completions": ("tenant", "model", "region", "worker"),
    "gar_accuracy": ("dataset", "worker"),
    "gar_policy": ("worker",),
    "gar_budget": ("tenant", "worker"),
    "gar_duals": ("tenant", "worker"),
    "gar_estimator_accuracy": ("model", "dataset", "worker"),
    "gar_estimator_latency": ("model", "region", "worker"),
    "gar_estimator_energy": ("model", "region", "worker"),
    "gar_intensity": ("worker",),
    "gar_dead_letters": ("worker",),
    "gar_consumer": ("worker",),
    "gar_throughput": ("worker",),
    "gar_metrics_writer": ("worker",),
    "gar_event_loop": ("worker",),
    "gar_decision_latency": ("worker",),
}

# Where each variable's values come from: (measurement, a field every point of it has).
VARIABLE_SOURCE: dict[str, tuple[str, str]] = {
    "tenant": ("gar_decisions", "count"),
    "model": ("gar_decisions", "count"),
    "region": ("gar_decisions", "count"),
    "dataset": ("gar_accuracy", "decisions"),
    "worker": ("gar_metrics_writer", "written_points"),
}

_WINDOW = "aggregateWindow(every: v.windowPeriod, fn: {fn}, createEmpty: false)"


def _cols(names: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{n}"' for n in names) + "]"


def variable_filter(name: str) -> str:
    return (
        f'  |> filter(fn: (r) => "${{{name}:pipe}}" == "{ALL}" or '
        f'contains(value: r.{name}, set: strings.split(v: "${{{name}:pipe}}", t: "|")))'
    )


def select(
    measurement: str, fields: Sequence[str], extra_variables: Sequence[str] = ()
) -> list[str]:
    """The rows of ``fields`` in range, filtered by every variable the measurement carries."""
    wanted = " or ".join(f'r._field == "{f}"' for f in fields)
    lines = [
        'import "strings"',
        "from(bucket: v.defaultBucket)",
        "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)",
        f'  |> filter(fn: (r) => r._measurement == "{measurement}" and ({wanted}))',
    ]
    for name in (*MEASUREMENT_VARIABLES[measurement], *extra_variables):
        lines.append(variable_filter(name))
    return lines


def _text(lines: list[str]) -> str:
    return "\n".join(lines)


def sum_per_window(measurement: str, field: str, by: Sequence[str] = ()) -> str:
    """Per-interval totals of a delta field, one series per ``by`` combination."""
    return _text(
        [
            *select(measurement, [field]),
            f"  |> group(columns: {_cols(by)})",
            "  |> " + _WINDOW.format(fn="sum"),
            f"  |> keep(columns: {_cols(['_time', '_value', *by])})",
        ]
    )


def rate_per_window(measurement: str, field: str, by: Sequence[str] = ()) -> str:
    """A delta field per second of the window."""
    return _text(
        [
            *select(measurement, [field]),
            f"  |> group(columns: {_cols(by)})",
            "  |> " + _WINDOW.format(fn="sum"),
            "  |> map(fn: (r) => ({r with _value: float(v: r._value)"
            " / (float(v: int(v: v.windowPeriod)) / 1000000000.0)}))",
            f"  |> keep(columns: {_cols(['_time', '_value', *by])})",
        ]
    )


def ratio_per_window(
    measurement: str,
    num: str,
    den: str,
    by: Sequence[str] = (),
    extra_variables: Sequence[str] = (),
    minus_from_one: bool = False,
) -> str:
    """sum(num) / sum(den) per interval (e.g. CO2 per request), one series per ``by``."""
    value = f"float(v: r.{num}) / float(v: r.{den})"
    if minus_from_one:
        value = f"1.0 - {value}"
    return _text(
        [
            *select(measurement, [num, den], extra_variables),
            f"  |> group(columns: {_cols([*by, '_field'])})",
            "  |> " + _WINDOW.format(fn="sum"),
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
            f"  |> filter(fn: (r) => exists r.{num} and exists r.{den} and r.{den} > 0)",
            f"  |> map(fn: (r) => ({{r with _value: {value}}}))",
            f"  |> keep(columns: {_cols(['_time', '_value', *by])})",
        ]
    )


def ratio_over_range(measurement: str, num: str, den: str, minus_from_one: bool = False) -> str:
    """sum(num) / sum(den) over the whole range: one number."""
    value = f"float(v: r.{num}) / float(v: r.{den})"
    if minus_from_one:
        value = f"1.0 - {value}"
    return _text(
        [
            *select(measurement, [num, den]),
            '  |> group(columns: ["_field"])',
            "  |> sum()",
            '  |> pivot(rowKey: [], columnKey: ["_field"], valueColumn: "_value")',
            f"  |> filter(fn: (r) => exists r.{num} and exists r.{den} and r.{den} > 0)",
            f"  |> map(fn: (r) => ({{r with _value: {value}}}))",
            '  |> keep(columns: ["_value"])',
        ]
    )


def sum_over_range(measurement: str, field: str) -> str:
    return _text(
        [
            *select(measurement, [field]),
            "  |> group()",
            "  |> sum()",
            '  |> keep(columns: ["_value"])',
        ]
    )


def last_per_window(
    measurement: str,
    field: str,
    by: Sequence[str],
    fn: str = "last",
    extra_variables: Sequence[str] = (),
    as_number: bool = False,
) -> str:
    """A gauge per interval (its last value, or ``fn``), one series per ``by``."""
    lines = [*select(measurement, [field], extra_variables)]
    if as_number:  # booleans: 1 = true
        lines.append("  |> map(fn: (r) => ({r with _value: if r._value then 1.0 else 0.0}))")
    lines += [
        f"  |> group(columns: {_cols(by)})",
        '  |> sort(columns: ["_time"])',
        "  |> " + _WINDOW.format(fn=fn),
        f"  |> keep(columns: {_cols(['_time', '_value', *by])})",
    ]
    return _text(lines)


def count_last_above(measurement: str, field: str, by: Sequence[str], above: float) -> str:
    """How many ``by`` series end the range above ``above`` (booleans: how many are true)."""
    return _text(
        [
            *select(measurement, [field]),
            f"  |> group(columns: {_cols(by)})",
            '  |> sort(columns: ["_time"])',
            "  |> last()",
            "  |> map(fn: (r) => ({r with _value: "
            f"if float(v: r._value) > {above} then 1 else 0}}))",
            "  |> group()",
            "  |> sum()",
            '  |> keep(columns: ["_value"])',
        ]
    )


def count_last_true(measurement: str, field: str, by: Sequence[str]) -> str:
    return _text(
        [
            *select(measurement, [field]),
            f"  |> group(columns: {_cols(by)})",
            '  |> sort(columns: ["_time"])',
            "  |> last()",
            "  |> map(fn: (r) => ({r with _value: if r._value then 1 else 0}))",
            "  |> group()",
            "  |> sum()",
            '  |> keep(columns: ["_value"])',
        ]
    )


def sum_of_latest_per_window(measurement: str, field: str, by: Sequence[str]) -> str:
    """Per interval, the latest value of every series, summed per ``by`` (e.g. consumer lag:
    each partition's latest lag, summed per topic)."""
    return _text(
        [
            *select(measurement, [field]),
            "  |> " + _WINDOW.format(fn="last"),
            f"  |> group(columns: {_cols(['_time', *by])})",
            "  |> sum()",
            f"  |> group(columns: {_cols(by)})",
            '  |> sort(columns: ["_time"])',
            f"  |> keep(columns: {_cols(['_time', '_value', *by])})",
        ]
    )


def histogram_quantile(measurement: str, quantile: float) -> str:
    """A quantile per interval of a histogram written as cumulative ``bucket`` counts per
    ``le`` (upper bound; "+Inf" last), summed over every series (workers) first."""
    return _text(
        [
            *select(measurement, ["bucket"]),
            '  |> group(columns: ["le"])',
            "  |> " + _WINDOW.format(fn="sum"),
            '  |> group(columns: ["_time"])',
            "  |> map(fn: (r) => ({r with le: float(v: r.le), _value: float(v: r._value)}))",
            '  |> sort(columns: ["le"])',
            f'  |> histogramQuantile(quantile: {quantile}, countColumn: "_value",'
            ' upperBoundColumn: "le", valueColumn: "_value")',
            "  |> group()",
            '  |> keep(columns: ["_time", "_value"])',
        ]
    )


def variable_values(name: str) -> str:
    """What Grafana lists for a variable: the tag's values in the time range."""
    measurement, field = VARIABLE_SOURCE[name]
    return _text(
        [
            "from(bucket: v.defaultBucket)",
            "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)",
            f'  |> filter(fn: (r) => r._measurement == "{measurement}" and r._field == "{field}")',
            "  |> last()",
            f'  |> keep(columns: ["{name}"])',
            "  |> group()",
            f'  |> distinct(column: "{name}")',
        ]
    )


# -- Grafana's interpolation ---------------------------------------------------------------
def go_duration(seconds: float) -> str:
    """``time.Duration.String()`` for whole seconds, as Grafana writes ``v.windowPeriod``."""
    s = max(int(seconds), 1)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"


def _rfc3339(ts_s: float) -> str:
    text = datetime.fromtimestamp(ts_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text.rstrip("0").rstrip(".") + "Z"


def interpolate(
    flux: str,
    *,
    start_s: float,
    stop_s: float,
    window_s: float,
    bucket: str,
    variables: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The query as Grafana sends it: the range, the window, the default bucket and the
    template variables (a variable not given is "All")."""
    chosen = variables or {}
    for name in VARIABLES:
        values = chosen.get(name)
        flux = flux.replace(f"${{{name}:pipe}}", "|".join(values) if values else ALL)
    return (
        flux.replace("v.timeRangeStart", _rfc3339(start_s))
        .replace("v.timeRangeStop", _rfc3339(stop_s))
        .replace("v.windowPeriod", go_duration(window_s))
        .replace("v.defaultBucket", f'"{bucket}"')
    )
