"""The ``gar`` command line. Each sub-command lives in its own module and registers here.

Global options (``-b/--bootstrap-server``, ``--prefix``, ``--debug``) may stand anywhere on the
line, before or after the sub-command, as in Kafka's own tools: ``main`` takes them out and
sets the matching ``GAR_*`` variable, so every setting (and every child process a command
starts) sees them. Every error ends as one ``error: <what> (<what to do>)`` line and exit 2.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence

import typer

from streams import __version__

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="GAR carbon-aware LLM routing on Kafka.",
    epilog="Examples:  gar dev up  ·  gar topics create  ·  gar demo  ·  "
    "gar -b kafka-1:9092 --prefix prod. policy show",
)

# option -> the environment variable it sets (a value option) or None (a flag)
GLOBAL_OPTIONS: dict[str, str] = {
    "-b": "GAR_KAFKA__BOOTSTRAP_SERVERS",
    "--bootstrap-server": "GAR_KAFKA__BOOTSTRAP_SERVERS",
    "--prefix": "GAR_TOPICS__PREFIX",
}
# Sub-commands where --prefix means something of their own (a name filter): left in place.
_OWN_PREFIX = (("topics", "list"), ("topics", "describe"), ("topics", "delete"))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gar-streams {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    bootstrap_server: str | None = typer.Option(
        None,
        "-b",
        "--bootstrap-server",
        metavar="HOST:PORT",
        help="Kafka bootstrap servers (GAR_KAFKA__BOOTSTRAP_SERVERS). Anywhere on the line.",
    ),
    prefix: str | None = typer.Option(
        None,
        "--prefix",
        metavar="PREFIX",
        help="Topic prefix every topic name starts with (GAR_TOPICS__PREFIX), e.g. demo.1fae13.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an error."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """GAR carbon-aware LLM routing on Kafka."""


def take_global_options(argv: Sequence[str]) -> tuple[list[str], dict[str, str], bool]:
    """(argv without the global options, GAR_* variables they set, --debug given)."""
    rest: list[str] = []
    env: dict[str, str] = {}
    debug = False
    words = [a for a in argv if not a.startswith("-")]
    keep_prefix = any(tuple(words[:2]) == own for own in _OWN_PREFIX)
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg == "--debug":
            debug = True
        elif name in GLOBAL_OPTIONS and not (name == "--prefix" and keep_prefix):
            if not eq:
                if i + 1 >= len(argv):
                    rest.append(arg)  # click reports the missing value
                    i += 1
                    continue
                value = argv[i + 1]
                i += 1
            env[GLOBAL_OPTIONS[name]] = value
        else:
            rest.append(arg)
        i += 1
    return rest, env, debug


def _register() -> None:
    # Sub-command modules are imported here (not at module top) to keep `gar --help` fast.
    from streams.cli import worker

    worker.register(app)
    from streams.cli import dev

    app.add_typer(dev.app, name="dev")
    from streams.cli import ops

    ops.register(app)
    from streams.cli import explain

    explain.register(app)
    from streams.cli import tools

    tools.register(app)
    from streams.cli import eval as eval_cli

    eval_cli.register(app)
    from streams.cli import policy

    policy.register(app)


def _warn_unknown_env() -> None:
    from streams.config import unknown_env

    for name, close in unknown_env():
        hint = f"did you mean {close}?" if close else "no setting has this name"
        typer.echo(f"warning: {name} is not a gar setting and is ignored ({hint})", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    args, env, debug = take_global_options(sys.argv[1:] if argv is None else argv)
    os.environ.update(env)
    debug = debug or os.environ.get("GAR_DEBUG", "") not in ("", "0", "false")
    if debug:
        os.environ["GAR_DEBUG"] = "1"
    from typer import Abort
    from typer._click.exceptions import ClickException

    from streams.cli.errors import EXIT_ERROR, CliError, explain
    from streams.cli.help import polish

    _warn_unknown_env()
    if not debug and "worker" not in args:
        # The clients log each failed connection attempt; the one error line says it instead.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        _register()
        command = typer.main.get_command(app)
        polish(command)
        rv = command.main(args=args, prog_name="gar", standalone_mode=False)
    except SystemExit:
        raise
    except (KeyboardInterrupt, Abort):
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    except ClickException as exc:
        if not isinstance(exc, CliError):  # a usage error: typer's own box, with the usage
            from typer import rich_utils

            rich_utils.rich_format_error(exc)
        else:
            exc.show()
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:
        err = explain(exc)
        if debug or err is None:
            traceback.print_exc()
        if err is None:
            typer.echo(
                f"error: {type(exc).__name__}: {exc} (an unexpected error; the traceback above "
                "says where, please report it)",
                err=True,
            )
        else:
            typer.echo(f"error: {err}", err=True)
        raise SystemExit(EXIT_ERROR) from None
    raise SystemExit(rv if isinstance(rv, int) else 0)
