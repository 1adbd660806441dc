"""``gar report`` and ``gar audit``: the SRE side (streams/report, streams/audit)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from streams.cli.errors import CliError
from streams.config import load_settings
from streams.report.timespec import parse_time_ms

_OUT = Path("gar-report")


def _labels(pairs: list[str]) -> dict[str, list[str]]:
    """``--tag worker=a --tag tenant=x --tag tenant=y``: the dashboards' variables."""
    from streams.report.flux import VARIABLES

    out: dict[str, list[str]] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--tag wants key=value, got {p!r}")
        if key not in VARIABLES:
            raise typer.BadParameter(f"--tag {key}: choose from {', '.join(VARIABLES)}")
        out.setdefault(key, []).append(value)
    return out


# A typer command: its signature is one annotated parameter per CLI option.
def report(
    out: Annotated[Path, typer.Option("--out", help="Directory for PNGs + page.")] = _OUT,
    source: Annotated[
        str, typer.Option("--source", help="metrics (the store) or decisions (the topic).")
    ] = "metrics",
    since: Annotated[
        str, typer.Option("--since", help="Start: now, 6h (ago), ISO-8601, epoch ms.")
    ] = "6h",
    until: Annotated[str, typer.Option("--until", help="End, same forms.")] = "now",
    step_s: Annotated[
        float, typer.Option("--step", help="Seconds per point (0: about 120 points).")
    ] = 0.0,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            help="A dashboard variable (a metrics tag), e.g. worker=host-1 or tenant=acme "
            "(repeatable).",
        ),
    ] = None,
    offsets: Annotated[
        str, typer.Option("--offsets", help="decisions source: offset range FROM:TO.")
    ] = "",
    catalog: Annotated[
        Path | None,
        typer.Option("--catalog", help="decisions source: catalog for the baseline."),
    ] = None,
) -> None:
    """Render the dashboards' views as PNG plots plus report.md / report.html."""
    settings = load_settings()
    now_ms = int(time.time() * 1000)
    try:
        start_ms, end_ms = parse_time_ms(since, now_ms), parse_time_ms(until, now_ms)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if end_ms <= start_ms:
        raise typer.BadParameter("--until must be after --since")
    step = step_s or max((end_ms - start_ms) / 1000 / 120, 1.0)
    if source == "metrics":
        from streams.metrics.query import FluxClient
        from streams.report.store import views_from_store

        client = FluxClient(settings.influx)
        if not client.healthy():
            raise CliError(
                f"metrics store not reachable at {settings.influx.url}",
                "start it with `gar dev up` or point GAR_INFLUX__URL at yours",
            )
        step = max(round(step), 1)  # Flux windows are whole seconds here
        views = views_from_store(
            client, start_ms / 1000, end_ms / 1000, step, variables=_labels(label or [])
        )
        where = f"metrics store {settings.influx.url}"
    elif source == "decisions":
        from streams.audit.reader import ReadRange, read_decisions
        from streams.report.decisions import views_from_decisions

        rng = ReadRange.parse(offsets) if offsets else ReadRange(start_ms=start_ms, end_ms=end_ms)
        rows = read_decisions(settings, rng, progress=True)
        from streams.audit.rederive_rows import expand_rows
        from streams.audit.run import load_catalog
        from streams.metrics.decision_metrics import LargestBaseline

        try:
            cat = load_catalog(settings, catalog)
            baseline: LargestBaseline | None = LargestBaseline(cat)
            rows = expand_rows(settings, rows, cat)  # decisions.v2: every candidate's estimates
        except Exception as exc:  # the report still works, only without the baseline
            typer.echo(f"note: no catalog ({type(exc).__name__}); no always-largest baseline")
            baseline = None
        records = [r.record for r in rows if r.record]
        times = [t for r in records if isinstance(t := r.get("ts_ms"), int)]
        if times:  # the records' own event-time span, not the --since default
            start_ms, end_ms = min(times), max(times) + 1
            step = step_s or max((end_ms - start_ms) / 1000 / 120, 1.0)
        views = views_from_decisions(records, step * 1000, baseline)
        where = f"topic {settings.topics.name(settings.topics.decisions)}"
    else:
        raise typer.BadParameter("--source is metrics or decisions")
    from streams.report.page import write_report

    files = write_report(views, out, source=where, start_s=start_ms / 1000, end_s=end_ms / 1000)
    empty = sum(p.empty for v in views for p in v.panels)
    total = sum(len(v.panels) for v in views)
    for text in (t for v in views for p in v.panels if (t := p.offender_text())):
        typer.echo(text)
    typer.echo(
        f"wrote {files.markdown} and {files.html} ({len(files.figures)} figures); "
        f"{total - empty}/{total} panels have data"
    )


def audit(
    since: Annotated[
        str | None, typer.Option("--since", help="Event-time start: 6h, ISO-8601, epoch ms.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Event-time end (exclusive).")
    ] = None,
    offsets: Annotated[
        str | None, typer.Option("--offsets", help="Offset range FROM:TO (TO exclusive).")
    ] = None,
    partition: Annotated[
        list[int] | None, typer.Option("--partition", help="Only these partitions.")
    ] = None,
    lateness_ms: Annotated[
        int, typer.Option("--lateness-ms", help="How far event time may lag the Kafka timestamp.")
    ] = 3_600_000,
    topic: Annotated[
        str | None,
        typer.Option("--topic", help="Decisions topic; the other topics take its prefix."),
    ] = None,
    catalog: Annotated[
        Path | None, typer.Option("--catalog", help="Catalog JSON (default: the worker's).")
    ] = None,
    policy_config: Annotated[
        list[Path] | None,
        typer.Option("--policy-config", help="PolicyConfig JSON for versions not on the topic."),
    ] = None,
    policy: Annotated[
        str | None, typer.Option("--policy", help="Counterfactual: replay with this policy.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full report.")] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Write one line per decision with its verdict.")
    ] = None,
    show: Annotated[int, typer.Option("--show", help="Mismatches to print.")] = 20,
    outcomes: Annotated[
        bool,
        typer.Option(
            "--outcomes/--no-outcomes",
            help="Join completion telemetry for observed accuracy, latency, CO2.",
        ),
    ] = True,
    check_inputs: Annotated[
        bool,
        typer.Option(
            "--check-inputs/--no-check-inputs",
            help="Also read each decision's request at its recorded offset.",
        ),
    ] = True,
) -> None:
    """Replay the decisions topic without a consumer group, re-derive every decision with the
    pure core, check each tenant's dual chain and summarise. Exit 1 on any mismatch."""
    from rich.console import Console

    from streams.audit.report import write_csv, write_json
    from streams.audit.run import AuditRequest, run_audit

    settings = load_settings()
    if topic is not None:
        # Every topic the audit reads (policy, completions, requests) comes from one prefix:
        # the decisions topic's.
        base = settings.topics.decisions
        if not topic.endswith(base) or len(topic) == len(base):
            raise CliError(
                f"--topic {topic} is not a decisions topic (<prefix>{base})",
                "give --prefix instead, e.g. gar --prefix demo.1fae13. audit",
            )
        settings = load_settings(topics={"prefix": topic[: -len(base)]})
        topic = None
    rng = _read_range(since, until, offsets, partition, lateness_ms)
    req = AuditRequest(
        rng,
        topic,
        catalog,
        list(policy_config or []),
        counterfactual_policy=policy,
        check_inputs=check_inputs,
        outcomes=outcomes,
        progress=True,
    )
    report, rows = run_audit(settings, req)  # LookupError (no such topic): cli.errors
    if json_out is not None:
        write_json(report, json_out)
    if csv_out is not None:
        write_csv(report, rows, csv_out)
    _print_audit(Console(), report, show)
    raise typer.Exit(0 if report.ok else 1)


def _read_range(
    since: str | None,
    until: str | None,
    offsets: str | None,
    partition: list[int] | None,
    lateness_ms: int,
) -> Any:
    from streams.audit.reader import ReadRange

    now_ms = int(time.time() * 1000)
    parts = tuple(partition) if partition else None
    try:
        if offsets is not None:
            return ReadRange.parse(offsets, parts)
        return ReadRange(
            start_ms=parse_time_ms(since, now_ms) if since else None,
            end_ms=parse_time_ms(until, now_ms) if until else None,
            partitions=parts,
            lateness_ms=lateness_ms,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def metrics_backfill(
    since: Annotated[str | None, typer.Option("--since", help="Event-time start.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Event-time end.")] = None,
    offsets: Annotated[
        str | None, typer.Option("--offsets", help="Offset range FROM:TO instead.")
    ] = None,
    catalog: Annotated[
        Path | None, typer.Option("--catalog", help="Catalog JSON (default: the worker's).")
    ] = None,
    bucket_s: Annotated[int, typer.Option("--bucket-s", help="Event-time bucket.")] = 60,
    tag_pair: Annotated[
        str, typer.Option("--tag", help="worker=NAME: the worker tag of the backfilled series.")
    ] = "worker=backfill",
) -> None:
    """Rebuild metrics from the decisions (and completions) topics into the metrics store,
    stamped with event time: for a store outage or a run that wrote no metrics."""
    from streams.audit.backfill import backfill
    from streams.audit.outcomes import read_completions
    from streams.audit.reader import ReadRange, read_decisions
    from streams.audit.rederive_rows import expand_rows
    from streams.audit.run import load_catalog
    from streams.metrics import build_metrics

    key, _, tag = tag_pair.partition("=")
    if key != "worker" or not tag:
        raise typer.BadParameter("--tag wants worker=NAME")
    settings = load_settings()
    rng = _read_range(since, until, offsets, None, 3_600_000)
    rows = read_decisions(settings, rng, progress=True)
    cat = load_catalog(settings, catalog)
    rows = expand_rows(settings, rows, cat)  # decisions.v2: every candidate's estimates
    completions = read_completions(settings, rows, rng.lateness_ms, 1_000)
    try:
        dead = read_decisions(
            settings, ReadRange(), topic=settings.topics.name(settings.topics.dead_letter)
        )
    except LookupError:
        dead = []
    metrics = build_metrics(settings.influx.model_copy(update={"worker_tag": tag}))
    buckets = backfill(
        metrics,
        rows,
        completions,
        cat,
        dead_letters=dead,
        bucket_ms=bucket_s * 1000,
    )
    metrics.close()
    stats = metrics.writer.stats() if metrics.writer else None
    typer.echo(
        f"{len(rows)} decisions and {len(completions)} completions in {buckets} buckets "
        f"-> {settings.influx.url} as worker={tag}: "
        f"{stats.written_points if stats else 0} points written, "
        f"{stats.dropped_points if stats else 0} dropped"
    )
    times = [t for r in rows if r.record and isinstance(t := r.record.get("ts_ms"), int)]
    if times:  # the points are at event time: where to find them
        typer.echo(
            "dashboards at the event time: "
            + grafana_link(min(times), max(times), tag)
            + f"; gar report --since {min(times)} --until {max(times) + bucket_s * 1000}"
            f" --tag worker={tag}"
        )
    if stats is not None and stats.dropped_points:
        raise typer.Exit(1)


def grafana_link(start_ms: int, end_ms: int, worker: str, uid: str = "gar-carbon") -> str:
    """A Grafana path (append it to Grafana's base URL) showing one run at its event time."""
    pad_ms = 60_000
    return (
        f"/d/{uid}?from={start_ms - pad_ms}&to={end_ms + pad_ms}&var-worker={worker}&timezone=utc"
    )


def _print_audit(console: Any, report: Any, show: int) -> None:
    s = report.summary.to_dict()
    console.print(
        f"[bold]{report.topic}[/]: {report.rows} records, {report.rederived} re-derived, "
        f"[{'green' if not report.mismatches else 'red'}]{len(report.mismatches)} mismatches[/], "
        f"{len(report.chain.breaks)} chain breaks over {report.chain.links_checked} links "
        f"({report.chain.tenants} tenants), {len(report.chain.duplicates)} duplicates, "
        f"{report.inputs_checked} requests checked at their offsets"
    )
    if report.rederived and report.rederive_s > 0:
        console.print(
            f"re-derived at {report.rederived / report.rederive_s:,.0f} decisions/s "
            f"({report.rederive_s:.2f} s CPU)"
        )
    if report.contexts is not None:
        c = report.contexts
        console.print(f"contexts: {c['usable']} usable of {c['records']} read")
    macs = report.macs
    if macs is not None:
        console.print(
            f"MAC chain: {macs.verified} of {macs.signed} signed records verified with "
            f"{macs.keys} key(s), {macs.range_heads} range heads, {macs.unsigned} unsigned, "
            f"[{'green' if not macs.issues else 'red'}]{len(macs.issues)} findings[/]"
        )
        for i in macs.issues[:show]:
            console.print(
                f"MAC {i.kind} {i.where} tenant={i.tenant}: {i.detail}",
                soft_wrap=True,
                markup=False,
            )
    for w in report.warnings:
        console.print(f"WARNING {w}", soft_wrap=True, markup=False)
    if report.unverifiable:
        console.print(
            f"{len(report.unverifiable)} unverifiable (e.g. {report.unverifiable[0]})",
            soft_wrap=True,
            markup=False,
        )
    for m in report.mismatches[:show]:
        # one plain line per finding: greppable, never truncated by the terminal width
        console.print(
            f"MISMATCH {m.where} request={m.request_id} tenant={m.tenant} {m.field}: "
            f"recorded={m.recorded} re-derived={m.rederived}",
            soft_wrap=True,
            markup=False,
        )
    for b in report.chain.issues[:show]:
        console.print(
            f"CHAIN {b.kind} {b.where} tenant={b.tenant} previous={b.previous}: "
            f"expected={b.expected!r} got={b.got!r}",
            soft_wrap=True,
            markup=False,
        )
    console.print(
        f"CO2 {s['co2_g']:.4g} g ({s['co2_g_per_request']:.4g} g/request), accuracy est "
        f"{s['accuracy_est_mean']:.3f}, floor met {100 * s['floor_met_ratio']:.1f} %, latency "
        f"cap met {100 * s['latency_cap_met_ratio']:.1f} %, stale intensity "
        f"{100 * s['stale_intensity_ratio']:.1f} %"
    )
    for tenant, t in s["tenants"].items():
        budget = "no budget" if t["budget_g"] is None else f"budget {t['budget_g']:.4g} g"
        console.print(
            f"  {tenant}: {t['decisions']} decisions, {t['co2_g']:.4g} g, {budget}, "
            f"peak window {t['max_window_spend_g']:.4g} g, "
            f"{t['decisions_over_budget']} decisions over budget"
        )
    o = report.outcomes
    if o and o["completed"]:
        acc = "n/a" if o["accuracy_observed"] is None else f"{o['accuracy_observed']:.3f}"
        console.print(
            f"observed ({o['completed']}/{o['decisions']} completed): accuracy {acc} over "
            f"{o['graded']} graded, serving p95 {o['serving_latency_p95_ms']:.0f} ms, "
            f"{100 * (o['over_latency_cap_ratio'] or 0):.1f} % over the latency cap, realised "
            f"CO2 {o['co2_realised_g']:.4g} g vs {o['co2_estimated_g_same_requests']:.4g} g "
            f"estimated for the {o['metered']} metered requests"
        )
    elif o is not None:
        console.print("observed: no completions found for these decisions")
    cf = report.counterfactual
    if cf:
        d = cf["difference"]
        console.print(
            f"counterfactual {cf['policy']}: CO2 {cf['counterfactual']['co2_g']:.4g} g vs "
            f"{cf['recorded']['co2_g']:.4g} g recorded (x{cf['co2_ratio'] or float('nan'):.3g}), "
            f"Δaccuracy {d['accuracy_est_mean']:+.4f}, Δp95 latency "
            f"{d['latency_p95_ms_est_mean']:+.1f} ms, {cf['changed_choices']} choices differ, "
            f"{cf['skipped']} skipped"
        )


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.command("audit")(audit)
    app.command("metrics-backfill")(metrics_backfill)
