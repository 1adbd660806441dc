"""``gar topics create|list|describe|delete``, ``gar worker`` and ``gar demo``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from streams.config import load_settings

topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics of the control plane")
console = Console()


@topics_app.command("create")
def topics_create() -> None:
    """Create every topic (and Faust changelog) with the partitions the tables need."""
    from streams.app.catalog import load_catalog
    from streams.kafka.admin import ensure_topics
    from streams.kafka.topics import topic_specs

    settings = load_settings()
    specs = topic_specs(settings, load_catalog(settings).model_names)
    results = asyncio.run(ensure_topics(settings, specs))  # TopicLayoutError: cli.errors
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


_PREFIX_HELP = "Only topics whose names start with this (default: the --prefix in force)."


def _topic_prefix(prefix: str | None) -> str:
    return load_settings().topics.prefix if prefix is None else prefix


@topics_app.command("list")
def topics_list(
    prefix: str | None = typer.Option(None, "--prefix", metavar="PREFIX", help=_PREFIX_HELP),
    all_topics: bool = typer.Option(False, "--all", help="Every topic on the broker."),
) -> None:
    """List topics and their partition counts."""
    from streams.kafka.admin import list_topic_info

    settings = load_settings()
    want = "" if all_topics else _topic_prefix(prefix)
    for info in asyncio.run(list_topic_info(settings, want)):
        typer.echo(f"{info.name}\t{info.partitions}")


@topics_app.command("describe")
def topics_describe(
    prefix: str | None = typer.Option(None, "--prefix", metavar="PREFIX", help=_PREFIX_HELP),
) -> None:
    """Partitions, cleanup, retention, compression and message counts of each topic."""
    from streams.kafka.admin import list_topic_info

    settings = load_settings()
    want = _topic_prefix(prefix)
    infos = asyncio.run(list_topic_info(settings, want, describe=True))
    table = Table(title=f"topics {want}* on {settings.kafka.bootstrap_servers}")
    table.add_column("topic", overflow="fold")
    for col in ("partitions", "messages", "cleanup", "retention", "compression"):
        table.add_column(col, justify="right")
    for i in infos:
        retention = i.configs.get("retention.ms", "")
        if retention.lstrip("-").isdigit() and int(retention) > 0:
            retention = f"{int(retention) / 86_400_000:g} d"
        table.add_row(
            i.name,
            str(i.partitions),
            str(i.messages),
            i.configs.get("cleanup.policy", ""),
            retention,
            i.configs.get("compression.type", ""),
        )
    console.print(table)


@topics_app.command("delete")
def topics_delete(
    prefix: str = typer.Option(
        ..., "--prefix", metavar="PREFIX", help="Delete every topic whose name starts with this."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete the topics of one prefix (a demo run's, a test's), with their Faust changelogs
    when the app id starts with the same prefix."""
    from streams.cli.errors import CliError
    from streams.kafka.admin import delete_prefixed_topics, list_topic_info

    if len(prefix) < 2:
        raise CliError(f"refusing to delete by the prefix {prefix!r}", "give a longer --prefix")
    settings = load_settings()
    names = [i.name for i in asyncio.run(list_topic_info(settings, prefix))]
    if not names:
        typer.echo(f"no topics start with {prefix!r} on {settings.kafka.bootstrap_servers}")
        return
    typer.echo("\n".join(names))
    if not yes and not typer.confirm(f"delete these {len(names)} topics?"):
        raise typer.Exit(1)
    deleted = asyncio.run(delete_prefixed_topics(settings, [prefix]))
    typer.echo(f"deleted {len(deleted)} topics")


def worker(
    loglevel: str = typer.Option(
        None, "--loglevel", help="debug|info|warning|error (default GAR_WORKER__LOG_LEVEL)."
    ),
) -> None:
    """Run one router worker (Faust) until interrupted."""
    from streams.app.runner import run_worker

    settings = load_settings()
    run_worker(settings, loglevel or settings.worker.log_level)


def probe(
    check: str = typer.Argument(..., help="live (/healthz) or ready (/readyz)"),
    timeout_s: float = typer.Option(3.0, "--timeout", help="give up after this long"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="print the JSON answer"),
) -> None:
    """Ask this worker's web server (GAR_WORKER__WEB_*) whether it is live or ready: exit 0 if
    so, 1 if not (for exec healthchecks; HTTP probes can ask /healthz and /readyz directly)."""
    from streams.app.probe import PATHS, run

    if check not in PATHS:
        raise typer.BadParameter(f"expected one of {sorted(PATHS)}", param_hint="CHECK")
    raise typer.Exit(run("live" if check == "live" else "ready", timeout_s, verbose))


def demo(
    requests: Annotated[
        int, typer.Option("--requests", "-n", min=1, help="Requests to route.")
    ] = 5_000,
    rate: Annotated[float, typer.Option("--rate", help="Requests per second to publish.")] = 1e3,
    poison: Annotated[
        float,
        typer.Option("--poison", min=0.0, max=1.0, help="Share of hostile inputs (dead-lettered)."),
    ] = 0.01,
    timeout_s: Annotated[
        float, typer.Option("--timeout", help="Give up after this many seconds.")
    ] = 180.0,
    keep_topics: Annotated[
        bool, typer.Option("--keep-topics", help="Keep the run's demo.<id>.* topics (to audit).")
    ] = False,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Full data directory (default GAR_DATA__DIR, else the sample)."
        ),
    ] = None,
) -> None:
    """Route a stream of real requests end to end on the local broker and print a summary
    (exits 1 if any request is unaccounted for). Start the services first: gar dev up."""
    from streams.orchestration.demo import run_demo

    settings = load_settings(**({"data": {"dir": data}} if data else {}))
    code = run_demo(settings, requests, rate, poison, timeout_s, console, keep_topics=keep_topics)
    raise typer.Exit(code)


def register(root: typer.Typer) -> None:
    root.add_typer(topics_app, name="topics")
    root.command("worker")(worker)
    root.command("probe")(probe)
    root.command("demo")(demo)
