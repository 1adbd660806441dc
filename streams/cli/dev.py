"""``gar dev up|down|status|fetch``: the local Kafka broker and metrics store."""

from __future__ import annotations

import typer

from streams.config import load_settings
from streams.devenv import DevProcessError, KafkaBroker, down, status, up

app = typer.Typer(no_args_is_help=True, help="Local Kafka broker + metrics store (127.0.0.1)")


@app.command("up")
def up_cmd(
    clean: bool = typer.Option(False, "--clean", help="Delete existing data first."),
) -> None:
    """Start the broker and the metrics store in the background and wait until healthy."""
    try:
        for service in up(load_settings().dev, clean=clean):
            typer.echo(service.describe())
    except DevProcessError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command("down")
def down_cmd(
    clean: bool = typer.Option(False, "--clean", help="Also delete their data."),
) -> None:
    """Stop both services (SIGTERM, then SIGKILL after a timeout)."""
    stopped = down(load_settings().dev, clean=clean)
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@app.command("status")
def status_cmd() -> None:
    """Print each service's state; exit 1 unless both are healthy."""
    services = status(load_settings().dev)
    for service in services:
        typer.echo(service.describe())
    if not all(service.healthy for service in services):
        raise typer.Exit(1)


@app.command("fetch")
def fetch_cmd() -> None:
    """Download the Kafka broker jars into the cache (Maven Central; no-op when cached)."""
    try:
        typer.echo(KafkaBroker(load_settings().dev).fetch_jars())
    except DevProcessError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
