"""``gar topics create``, ``gar worker`` and ``gar demo``: the stream-processing control plane."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from streams.config import load_settings

topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics of the control plane")
console = Console()


@topics_app.command("create")
def topics_create() -> None:
    """Create every topic (and Faust changelog) with the partitions the tables need."""
    from streams.app.admin import TopicLayoutError, ensure_topics
    from streams.app.catalog import load_catalog
    from streams.app.topics import topic_specs

    settings = load_settings()
    specs = topic_specs(settings, load_catalog(settings).model_names)
    try:
        results = asyncio.run(ensure_topics(settings, specs))
    except TopicLayoutError as exc:
        console.print(f"[red]topic layout mismatch:[/red] {exc}")
        raise typer.Exit(2) from exc
    table = Table(title=f"topics on {settings.kafka.bootstrap_servers}")
    table.add_column("topic", overflow="fold")
    for col in ("partitions", "cleanup", "status"):
        table.add_column(col, no_wrap=True)
    table.add_column("role")
    for r in results:
        table.add_row(
            r.spec.name,
            str(r.partitions),
            r.spec.topic_configs()["cleanup.policy"],
            "created" if r.created else "exists",
            r.spec.role,
        )
    console.print(table)


def worker(
    loglevel: str = typer.Option(None, help="log level (default GAR_WORKER__LOG_LEVEL)"),
) -> None:
    """Run one router worker (Faust) until interrupted."""
    from streams.app.runner import run_worker

    settings = load_settings()
    run_worker(settings, loglevel or settings.worker.log_level)


def demo(
    requests: int = typer.Option(5_000, "--requests", "-n", min=1, help="requests to route"),
    rate: float = typer.Option(1_000.0, help="requests per second to publish"),
    poison: float = typer.Option(0.01, help="share of hostile inputs (dead-lettered)"),
    timeout_s: float = typer.Option(180.0, "--timeout", help="give up after this long"),
) -> None:
    """Local broker + store must be up: route a stream of real requests end to end and print
    a summary (exits 1 if any request is unaccounted for)."""
    from streams.app.demo import run_demo

    code = run_demo(load_settings(), requests, rate, poison, timeout_s, console)
    raise typer.Exit(code)


def register(root: typer.Typer) -> None:
    root.add_typer(topics_app, name="topics")
    root.command("worker")(worker)
    root.command("demo")(demo)
