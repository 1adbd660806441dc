"""The ``gar`` command line. Each sub-command lives in its own module and registers here."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="GAR carbon-aware LLM routing")


def _register() -> None:
    # Sub-command modules are imported here (not at module top) to keep `gar --help` fast.
    from streams.cli import worker

    worker.register(app)
    from streams.cli import dev

    app.add_typer(dev.app, name="dev")
    from streams.cli import ops

    ops.register(app)
    from streams.cli import tools

    tools.register(app)
    from streams.cli import eval as eval_cli

    eval_cli.register(app)


def main() -> None:
    _register()
    app()
