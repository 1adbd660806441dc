"""The matrix's one table (rich on the terminal, markdown in the output directory) and its
summary lines."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from streams.eval.matrix_score import RATIO_GOAL, RATIO_TARGET, WINDOWS_SHARE_OF_WEEK_RUNS

COLUMNS = (
    "scenario",
    "policy",
    "requests/days",
    "zones",
    "models",
    "floors missed (worst pt)",
    "CO2/eq-acc LP",
    "CO2/eq-acc LP, realised CO2",
    "CO2/oracle-lp",
    "windows",
    "p95 s (SLO)",
    "budget over g",
)


def _ratio(x: float) -> str:
    return "inf" if not math.isfinite(x) else f"{x:.3f}"


def row_cells(r: Mapping[str, Any]) -> list[str]:
    zones = r["zones"]
    models = r["models"][0] if len(r["models"]) == 1 else f"{len(r['models'])} models"
    missed = f"{r['floors_missed']}"
    if r["floors_missed"]:
        missed += f" ({r['worst_shortfall_pt']:.2f})"
    ratio = _ratio(r["co2_ratio_equal_accuracy"])
    if r["equal_accuracy_capped"]:
        ratio += "*"
    return [
        r["scenario"],
        r["policy"],
        f"{r['requests']:,}/{r['days']:g}",
        f"{len(zones)}" if len(zones) > 4 else ",".join(zones),
        models,
        missed,
        ratio,
        _ratio(r["co2_ratio_equal_accuracy_realised_co2"]),
        _ratio(r["co2_ratio_oracle_lp"]),
        f"{r['windows_met']}/{r['windows']}",
        f"{r['latency_p95_ms'] / 1000:.1f} ({r['slo_ms'] / 1000:g})",
        f"{r['budget_violation_g']:.3f}",
    ]


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join(["---"] * 5 + ["---:"] * (len(COLUMNS) - 5)) + "|",
    ]
    lines += ["| " + " | ".join(row_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _holds(ok: bool) -> str:
    return "holds" if ok else "MISSED"


def _m(spread: Mapping[str, float | None], fmt: str) -> str:
    med, worst = spread["median"], spread["worst"]
    if med is None or worst is None:
        return "n/a"
    return f"median {format(med, fmt)}, worst {format(worst, fmt)}"


def summary_lines(summary: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Per policy: the typical (median) and worst case of each target across scenarios and
    whether it holds everywhere."""
    out: list[str] = []
    for policy, s in summary.items():
        t1, t2, t3, t4 = (
            s["target1_floors"],
            s["target2_ratio"],
            s["target3_windows"],
            s["target4_slo"],
        )
        out.append(
            f"{policy} over {s['scenarios']} scenarios: "
            f"(1) floors missed per scenario {_m(t1['floors_missed'], '.0f')}, worst shortfall "
            f"{_m(t1['worst_shortfall_pt'], '.2f')} pt, in {t1['scenarios_missing']} "
            f"scenario(s): {_holds(t1['holds'])}; "
            f"(2) CO2 / equal-accuracy oracle-lp {_m(t2['co2_ratio_equal_accuracy'], '.3f')} "
            f"(<= {RATIO_TARGET:.2f}: {_holds(t2['holds'])}, {t2['scenarios_over_target']} "
            f"over; goal <= {RATIO_GOAL:.2f}: {_holds(t2['goal_holds'])}), on realised CO2 "
            f"{_m(t2['co2_ratio_equal_accuracy_realised_co2'], '.3f')}, CO2 / oracle-lp "
            f"{_m(t2['co2_ratio_oracle_lp'], '.3f')}; "
            f"(3) windows met {_m(t3['windows_met_fraction'], '.0%')}, 7-day runs meeting "
            f"6 of 7: {t3['week_runs_met']} of {t3['week_runs']} (needs >= "
            f"{WINDOWS_SHARE_OF_WEEK_RUNS:.0%}): {_holds(t3['holds'])}, every scenario: "
            f"{_holds(t3['holds_everywhere'])}; "
            f"(4) p95 / SLO {_m(t4['p95_over_slo'], '.2f')}: {_holds(t4['holds'])}, budget "
            f"overspend {_m(t4['budget_violation_g'], '.3f')} g; "
            f"all targets: {_holds(s['all_hold'])}."
        )
    return out


def markdown_report(report: Mapping[str, Any]) -> str:
    lines = [
        f"Scenario matrix `{report['spec']}`: {len(report['scenarios'])} scenarios, policies "
        f"{', '.join(report['policies'])}, {report['jobs']} jobs, wall time "
        f"{report['wall_s']:.0f} s, scenario CPU time "
        f"{sum(r.get('cpu_s', 0.0) for r in _first_rows(report['rows'])):.0f} s.",
        "",
        markdown_table(report["rows"]),
        "`*`: max(floor, the policy's realised accuracy) is above what oracle-lp can reach on "
        "some dataset; that floor is held at the reach.",
        "",
        *summary_lines(report["summary"]),
    ]
    if report["errors"]:
        lines += ["", "Scenarios that failed: " + ", ".join(sorted(report["errors"])) + "."]
    return "\n".join(lines) + "\n"


def _first_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One row per scenario (its timings repeat on every policy's row)."""
    seen: set[str] = set()
    out = []
    for r in rows:
        if r["scenario"] not in seen:
            seen.add(r["scenario"])
            out.append(r)
    return out


def rich_table(rows: Sequence[Mapping[str, Any]], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for i, col in enumerate(COLUMNS):
        table.add_column(col, justify="left" if i < 5 else "right", no_wrap=i == 0)
    for r in rows:
        cells = row_cells(r)
        style = None if r["target1_floors"] and r["target2_ratio"] else "yellow"
        table.add_row(*cells, style=style)
    return table
