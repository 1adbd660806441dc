"""``gar produce``, ``gar carbon-feed`` and ``gar fleet``: bounded traffic tools (streams/tools)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streams.cli.errors import CliError
from streams.config import Settings, load_settings

if TYPE_CHECKING:
    from streams.core.catalog import Catalog

console = Console()


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _split(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def time_option(option: str, text: str) -> int:
    """Epoch ms of a time option (the one parser: ``now``, ``6h`` ago, ISO-8601, epoch ms)."""
    from streams.report.timespec import parse_time_ms

    try:
        return parse_time_ms(text, int(time.time() * 1000))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def first_hour_ms(folder: Path, zones: list[str]) -> int:
    """Event time of the first row of the zones' Electricity Maps exports."""
    from streams.tools.carbon_feed import merged_events

    for event in merged_events(folder, zones):
        return int(event["ts_ms"])
    raise CliError(f"no intensity rows for {', '.join(zones)} in {folder}", "check --zones")


def _check_datasets(settings: Settings, wanted: list[str]) -> None:
    from streams.data.correctness import load_correctness
    from streams.tools.produce import correctness_files

    known = sorted(load_correctness(correctness_files(settings)).datasets)
    unknown = [d for d in wanted if d not in known]
    if unknown:
        raise CliError(f"unknown dataset {', '.join(unknown)}", f"choose from {', '.join(known)}")


def _catalog(settings: Settings, path: str | None) -> Catalog:
    from streams.app.catalog import load_catalog
    from streams.core.catalog import Catalog
    from streams.core.errors import CatalogError

    try:
        return Catalog.load(Path(path)) if path else load_catalog(settings)
    except CatalogError as exc:
        raise CliError(str(exc), "pass --catalog FILE") from exc


# A typer command: its signature is one annotated parameter per CLI option.
def produce(
    count: Annotated[
        int, typer.Option("--requests", "-n", min=1, help="Requests to send.")
    ] = 10_000,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Requests per second (default: as fast as possible)."),
    ] = None,
    speedup: Annotated[
        float | None,
        typer.Option("--speedup", help="Pace by event time: X event-seconds per wall second."),
    ] = None,
    duration_s: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Trace seed (same seed -> same requests).")] = 0,
    days: Annotated[float, typer.Option(help="Event-time span of the trace (days).")] = 7.0,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help="Event time of the trace start: ISO-8601, epoch ms or 6h (ago); "
            "default: day 150 of the carbon data.",
        ),
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Only these datasets (repeatable).")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Request id prefix (default: random).")
    ] = None,
    tenants: Annotated[
        int | None,
        typer.Option(
            "--tenants", min=1, help="Tenants with Zipf shares (default: three, 50/30/20%)."
        ),
    ] = None,
    poison: Annotated[
        float, typer.Option("--poison", min=0.0, max=1.0, help="Fraction of hostile messages.")
    ] = 0.0,
    catalog_path: Annotated[str | None, typer.Option("--catalog")] = None,
) -> None:
    """Replay real requests (shared correctness data) onto the requests topic."""
    from streams.tools.produce import produce_requests, trace_requests

    settings = load_settings()
    catalog = _catalog(settings, catalog_path)
    start_ms = None if start is None else time_option("--start", start)
    if dataset:
        _check_datasets(settings, dataset)
    rid = run_id or uuid.uuid4().hex[:8]
    with console.status("building the request trace from the real data"):
        reqs = trace_requests(
            settings,
            catalog,
            count,
            seed=seed,
            run_id=rid,
            days=days,
            start_ms=start_ms,
            datasets=tuple(dataset) if dataset else None,
            tenants=tenants,
        )
    with _progress() as bar:
        task = bar.add_task(f"produce {rid}", total=len(reqs), rate="")

        def tick(sent: int) -> None:
            elapsed = bar.tasks[task].elapsed or 0.0
            bar.update(task, completed=sent, rate=f"{sent / elapsed:,.0f}/s" if elapsed else "")

        stats = asyncio.run(
            produce_requests(
                settings,
                reqs,
                rate_per_s=rate,
                speedup=speedup,
                duration_s=duration_s,
                poison_fraction=poison,
                seed=seed,
                on_progress=tick,
            )
        )
    table = Table(title=f"produced to {settings.topics.name(settings.topics.requests)}")
    for col in ("run id", "sent", "poisoned", "seconds", "msg/s"):
        table.add_column(col)
    table.add_row(
        rid,
        str(stats.sent),
        str(stats.poisoned),
        f"{stats.elapsed_s:.1f}",
        f"{stats.rate_per_s:,.0f}",
    )
    console.print(table)
    if stats.expected_reasons:
        console.print(
            "expected dead letters by reason: "
            + ", ".join(f"{r}={n}" for r, n in sorted(stats.expected_reasons.items()))
        )


def carbon_feed(
    zones: Annotated[
        str | None,
        typer.Option("--zones", help="Comma-separated zones (default: the catalog's)."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help="First hour: ISO-8601, epoch ms or 6h (ago); default: the data's first hour.",
        ),
    ] = None,
    trace_start: Annotated[
        str | None,
        typer.Option(
            "--trace-start",
            help="Line the feed up with a `gar produce` trace starting here (a time, or "
            "'default' for produce's default start): readings from the hour before it, and a "
            "paced clock one event hour ahead, so each request finds its hour's reading.",
        ),
    ] = None,
    hours: Annotated[
        int | None, typer.Option("--hours", min=1, help="Hours to publish from the start.")
    ] = None,
    speedup: Annotated[
        float | None,
        typer.Option("--speedup", help="Pace by event time: X event-seconds per wall second."),
    ] = None,
    max_events: Annotated[int | None, typer.Option("--max-events", min=1)] = None,
    duration_s: Annotated[float | None, typer.Option("--duration")] = None,
    signal: Annotated[
        str, typer.Option("--signal", help="Intensity signal: direct or lca (life-cycle).")
    ] = "direct",
    directory: Annotated[
        str | None, typer.Option("--carbon", help="Directory of Electricity Maps CSV exports.")
    ] = None,
    ready_file: Annotated[
        str | None,
        typer.Option(
            "--ready-file",
            help="Create this file once the readings due at the start are on the broker "
            "(a healthcheck for what waits on the feed).",
        ),
    ] = None,
    catalog_path: Annotated[str | None, typer.Option("--catalog")] = None,
) -> None:
    """Publish an Electricity Maps CSV trace as carbon-intensity events (keyed by zone)."""
    from streams.tools.carbon_feed import FeedWindow, carbon_dir, feed_carbon, merged_events

    if signal not in ("direct", "lca"):
        raise typer.BadParameter("--signal must be direct or lca")
    if start is not None and trace_start is not None:
        raise CliError("--start and --trace-start both given", "use one of them")
    settings = load_settings()
    catalog = _catalog(settings, catalog_path)
    zone_list = _split(zones) or sorted({r.zone for r in catalog.regions})
    folder = Path(directory) if directory else carbon_dir(settings)
    from streams.data.carbon import carbon_files

    have = carbon_files(folder)
    if unknown := [z for z in zone_list if z not in have]:
        raise CliError(f"no intensity data for zone {', '.join(unknown)} in {folder}",
                       f"choose from {', '.join(sorted(have))}")  # fmt: skip
    if trace_start is not None:
        from streams.tools.produce import default_trace_start_ms

        trace_ms = (
            default_trace_start_ms(settings, catalog)
            if trace_start == "default"
            else time_option("--trace-start", trace_start)
        )
        window = FeedWindow.for_trace(trace_ms, hours)
    else:
        start_ms = None if start is None else time_option("--start", start)
        if hours is not None and start_ms is None:
            start_ms = first_hour_ms(folder, zone_list)  # --hours counts from the data's start
        window = FeedWindow.from_start(start_ms, hours)
    events = merged_events(
        folder,
        zone_list,
        start_ms=window.first_ms,
        end_ms=window.end_ms,
        emission_factor="lifecycle" if signal == "lca" else "direct",
    )
    total = max_events or (window.hours * len(zone_list) if window.hours else None)
    with _progress() as bar:
        task = bar.add_task(f"carbon-feed {len(zone_list)} zones", total=total, rate="")
        stats = asyncio.run(
            feed_carbon(
                settings,
                events,
                speedup=speedup,
                origin_ms=window.origin_ms,
                max_events=max_events,
                duration_s=duration_s,
                on_progress=lambda n: bar.update(task, completed=n),
                on_caught_up=(lambda: Path(ready_file).touch()) if ready_file else None,
            )
        )
    table = Table(title=f"published to {settings.topics.name(settings.topics.carbon_intensity)}")
    for col in ("zone", "events"):
        table.add_column(col)
    for z, n in sorted(stats.per_zone.items()):
        table.add_row(z, str(n))
    console.print(table)
    console.print(f"event time {stats.first_ts_ms} .. {stats.last_ts_ms} in {stats.elapsed_s:.1f}s")


def fleet(
    max_messages: Annotated[int | None, typer.Option("--max-messages", min=1)] = None,
    duration_s: Annotated[float | None, typer.Option("--duration")] = None,
    idle_timeout_s: Annotated[
        float | None, typer.Option("--idle-timeout", help="Stop after this long without input.")
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Serve only these models (repeatable).")
    ] = None,
    group_id: Annotated[str | None, typer.Option("--group-id")] = None,
    catalog_path: Annotated[str | None, typer.Option("--catalog")] = None,
) -> None:
    """Simulate the serving fleets: dispatch.<model> in, completion telemetry out."""
    from streams.data.correctness import load_correctness
    from streams.tools.fleet import run_fleet
    from streams.tools.fleet_model import FleetModel
    from streams.tools.produce import correctness_files

    if max_messages is None and duration_s is None and idle_timeout_s is None:
        raise typer.BadParameter("give --max-messages, --duration or --idle-timeout (bounded)")
    settings = load_settings()
    sim = FleetModel(
        _catalog(settings, catalog_path), load_correctness(correctness_files(settings))
    )
    with _progress() as bar:
        task = bar.add_task("fleet", total=max_messages, rate="")
        stats = asyncio.run(
            run_fleet(
                settings,
                sim,
                models=model,
                group_id=group_id,
                max_messages=max_messages,
                duration_s=duration_s,
                idle_timeout_s=idle_timeout_s,
                on_progress=lambda s: bar.update(task, completed=s.consumed),
            )
        )
    table = Table(title="fleet: completions per model")
    for col in ("model", "completions"):
        table.add_column(col)
    for m, n in sorted(stats.per_model.items()):
        table.add_row(m, str(n))
    console.print(table)
    acc = stats.correct / stats.completed if stats.completed else 0.0
    console.print(
        f"consumed {stats.consumed}, completed {stats.completed}, invalid {stats.invalid}, "
        f"accuracy {acc:.3f}, mean serving latency {stats.mean_latency_ms:.0f} ms, "
        f"energy {stats.energy_j / 3.6e6:.4f} kWh in {stats.elapsed_s:.1f}s"
    )


def register(root: typer.Typer) -> None:
    root.command("produce")(produce)
    root.command("carbon-feed")(carbon_feed)
    root.command("fleet")(fleet)
