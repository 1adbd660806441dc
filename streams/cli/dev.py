"""``gar dev up|down|status|fetch``: the local Kafka broker and metrics store."""

from __future__ import annotations

import typer

from streams.config import load_settings
from streams.devenv import SERVICE_NAMES, DevProcessError, KafkaBroker, down, status, up

app = typer.Typer(no_args_is_help=True, help="Local Kafka broker + metrics store (127.0.0.1)")

_SERVICE_HELP = f"Only this service ({' or '.join(SERVICE_NAMES)}); default: all."


def _selected(service: str | None) -> tuple[str, ...]:
    if service is None:
        return SERVICE_NAMES
    if service not in SERVICE_NAMES:
        raise typer.BadParameter(f"unknown service {service!r}; choose from {SERVICE_NAMES}")
    return (service,)


@app.command("up")
def up_cmd(
    clean: bool = typer.Option(False, "--clean", help="Delete existing data first."),
    service: str | None = typer.Option(None, "--service", help=_SERVICE_HELP),
) -> None:
    """Start the broker and the metrics store in the background and wait until healthy."""
    try:
        for state in up(load_settings().dev, clean=clean, only=_selected(service)):
            typer.echo(state.describe())
    except DevProcessError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command("down")
def down_cmd(
    clean: bool = typer.Option(False, "--clean", help="Also delete their data."),
    service: str | None = typer.Option(None, "--service", help=_SERVICE_HELP),
) -> None:
    """Stop both services (SIGTERM, then SIGKILL after a timeout)."""
    stopped = down(load_settings().dev, clean=clean, only=_selected(service))
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@app.command("status")
def status_cmd(
    service: str | None = typer.Option(None, "--service", help=_SERVICE_HELP),
) -> None:
    """Print each service's state; exit 1 unless all selected services are healthy."""
    states = status(load_settings().dev, only=_selected(service))
    for state in states:
        typer.echo(state.describe())
    if not all(state.healthy for state in states):
        raise typer.Exit(1)


@app.command("fetch")
def fetch_cmd() -> None:
    """Download the Kafka broker jars into the cache (Maven Central; no-op when cached)."""
    try:
        typer.echo(KafkaBroker(load_settings().dev).fetch_jars())
    except DevProcessError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
