"""The ops CLI commands on a fresh typer app."""

from __future__ import annotations

import typer

from streams.cli import explain, ops


def ops_cli() -> typer.Typer:
    """A fresh root app with only the ops commands (the shared root app registers once)."""
    root = typer.Typer()
    root.callback()(lambda: None)
    ops.register(root)
    explain.register(root)
    return root
