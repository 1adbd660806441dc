"""``gar produce``, ``gar carbon-feed`` and ``gar fleet``: bounded traffic tools (streams/tools)."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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


def _catalog(settings: Settings, path: str | None) -> Catalog:
    from pathlib import Path

    from streams.app.catalog import load_catalog
    from streams.core.catalog import Catalog
    from streams.core.errors import CatalogError

    try:
        return Catalog.load(Path(path)) if path else load_catalog(settings)
    except CatalogError as exc:
        console.print(f"[red]{exc}[/red] (pass --catalog PATH)")
        raise typer.Exit(2) from exc


def produce(
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Requests to send.")] = 10_000,
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
    start_ms: Annotated[
        int | None,
        typer.Option(
            "--start-ms",
            help="Event time of the trace start (default: day 150 of the carbon data).",
        ),
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Only these datasets (repeatable).")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Request id prefix (default: random).")
    ] = None,
    poison: Annotated[
        float, typer.Option("--poison", min=0.0, max=1.0, help="Fraction of hostile messages.")
    ] = 0.0,
    catalog_path: Annotated[str | None, typer.Option("--catalog")] = None,
) -> None:
    """Replay real requests (shared correctness data) onto the requests topic."""
    from streams.tools.kafka_io import MissingTopicsError
    from streams.tools.produce import produce_requests, trace_requests

    settings = load_settings()
    catalog = _catalog(settings, catalog_path)
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
        )
    with _progress() as bar:
        task = bar.add_task(f"produce {rid}", total=len(reqs), rate="")

        def tick(sent: int) -> None:
            elapsed = bar.tasks[task].elapsed or 0.0
            bar.update(task, completed=sent, rate=f"{sent / elapsed:,.0f}/s" if elapsed else "")

        try:
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
        except MissingTopicsError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
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
    zone: Annotated[
        list[str] | None, typer.Option("--zone", help="Zones (repeatable; default: the catalog's).")
    ] = None,
    start_ms: Annotated[
        int | None, typer.Option("--start-ms", help="First hour (event time, ms).")
    ] = None,
    hours: Annotated[int | None, typer.Option("--hours", min=1, help="Hours to publish.")] = None,
    speedup: Annotated[
        float | None,
        typer.Option("--speedup", help="Pace by event time: X event-seconds per wall second."),
    ] = None,
    max_events: Annotated[int | None, typer.Option("--max-events", min=1)] = None,
    duration_s: Annotated[float | None, typer.Option("--duration")] = None,
    emission_factor: Annotated[
        str, typer.Option("--emission-factor", help="lifecycle (LCA) or direct.")
    ] = "lifecycle",
    directory: Annotated[
        str | None, typer.Option("--dir", help="Directory of Electricity Maps CSV exports.")
    ] = None,
    catalog_path: Annotated[str | None, typer.Option("--catalog")] = None,
) -> None:
    """Publish an Electricity Maps CSV trace as carbon-intensity events (keyed by zone)."""
    from pathlib import Path

    from streams.tools.carbon_feed import carbon_dir, feed_carbon, merged_events
    from streams.tools.kafka_io import MissingTopicsError

    if emission_factor not in ("lifecycle", "direct"):
        raise typer.BadParameter("--emission-factor must be lifecycle or direct")
    settings = load_settings()
    zones = zone or sorted({r.zone for r in _catalog(settings, catalog_path).regions})
    end_ms = None if start_ms is None or hours is None else start_ms + hours * 3_600_000
    events = merged_events(
        Path(directory) if directory else carbon_dir(settings),
        zones,
        start_ms=start_ms,
        end_ms=end_ms,
        emission_factor=emission_factor,  # type: ignore[arg-type]
    )
    total = max_events or (hours * len(zones) if hours else None)
    with _progress() as bar:
        task = bar.add_task(f"carbon-feed {len(zones)} zones", total=total, rate="")
        try:
            stats = asyncio.run(
                feed_carbon(
                    settings,
                    events,
                    speedup=speedup,
                    origin_ms=start_ms,
                    max_events=max_events,
                    duration_s=duration_s,
                    on_progress=lambda n: bar.update(task, completed=n),
                )
            )
        except MissingTopicsError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
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
    from streams.tools.kafka_io import MissingTopicsError
    from streams.tools.produce import correctness_files

    if max_messages is None and duration_s is None and idle_timeout_s is None:
        raise typer.BadParameter("give --max-messages, --duration or --idle-timeout (bounded)")
    settings = load_settings()
    sim = FleetModel(
        _catalog(settings, catalog_path), load_correctness(correctness_files(settings))
    )
    with _progress() as bar:
        task = bar.add_task("fleet", total=max_messages, rate="")
        try:
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
        except MissingTopicsError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
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
