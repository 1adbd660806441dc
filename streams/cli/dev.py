"""``gar dev up|down|status|fetch``: the local Kafka broker and metrics store."""

from __future__ import annotations

import typer

from streams.cli.errors import CliError
from streams.config import load_settings
from streams.devenv import (
    ALL_SERVICE_NAMES,
    SERVICE_NAMES,
    InfluxStore,
    KafkaBroker,
    down,
    status,
    up,
)

app = typer.Typer(
    no_args_is_help=True,
    help="Local Kafka broker + InfluxDB (127.0.0.1); a replicated 3-node Kafka cluster on request",
)

_SERVICE_HELP = (
    f"Only this service ({', '.join(ALL_SERVICE_NAMES)}); default: {' and '.join(SERVICE_NAMES)}"
    " (cluster: three KRaft nodes from GAR_DEV__KAFKA_CLUSTER_PORT on)."
)


def _selected(service: str | None) -> tuple[str, ...]:
    if service is None:
        return SERVICE_NAMES
    if service not in ALL_SERVICE_NAMES:
        raise typer.BadParameter(f"unknown service {service!r}; choose from {ALL_SERVICE_NAMES}")
    return (service,)


@app.command("up")
def up_cmd(
    clean: bool = typer.Option(False, "--clean", help="Delete existing data first."),
    service: str | None = typer.Option(None, "--service", help=_SERVICE_HELP),
) -> None:
    """Start the broker and InfluxDB in the background and wait until healthy."""
    for state in up(load_settings().dev, clean=clean, only=_selected(service)):
        typer.echo(state.describe())


@app.command("down")
def down_cmd(
    clean: bool = typer.Option(False, "--clean", help="Also delete their data."),
    service: str | None = typer.Option(None, "--service", help=_SERVICE_HELP),
) -> None:
    """Stop the services, the cluster too if it runs (SIGTERM, then SIGKILL after a timeout)."""
    only = _selected(service) if service is not None else ALL_SERVICE_NAMES
    stopped = down(load_settings().dev, clean=clean, only=only)
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


@app.command("serve")
def serve_cmd(
    service: str = typer.Option(..., "--service", help=f"One of {', '.join(SERVICE_NAMES)}."),
) -> None:
    """Run one service in the foreground until SIGTERM or SIGINT (a container's main process)."""
    from streams.devenv.process import DevProcessError
    from streams.devenv.serve import serve

    try:
        code = serve(load_settings().dev, _selected(service)[0])
    except DevProcessError as exc:
        raise CliError(str(exc), "see the service's log above") from exc
    raise typer.Exit(code)


@app.command("fetch")
def fetch_cmd(
    service: str | None = typer.Option(None, "--service", help=_SERVICE_HELP),
) -> None:
    """Put the services' binaries in the cache: the Kafka jars (Maven Central) and influxd
    (built with Go from the Go module proxy). A no-op for what is cached already."""
    dev = load_settings().dev
    for name in _selected(service):
        built = (
            InfluxStore(dev).fetch_binary() if name == "metrics" else KafkaBroker(dev).fetch_jars()
        )
        typer.echo(f"{name}: {built}")
