"""The ``gar`` entry point. It imports nothing the base install lacks, so that an install
without the server extra ends in the one error line instead of a traceback."""

from __future__ import annotations

import importlib.util
import sys

SERVER_MODULES = ("typer", "rich", "faust")


def main() -> None:
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"error: the gar command needs the server extra ({', '.join(missing)} missing) "
            "(pip install 'gar-streams[server]')",
            file=sys.stderr,
        )
        raise SystemExit(2)
    from streams.cli import main as cli_main

    cli_main()
