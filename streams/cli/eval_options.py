"""Option parsing shared by the ``gar eval`` commands."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer


def parse_policy_config(text: str | None) -> dict[str, Any]:
    """``--policy-config``: a JSON object of PolicyConfig overrides (empty when absent)."""
    if not text:
        return {}
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--policy-config is not JSON: {exc}") from None
    if not isinstance(overrides, dict):
        raise typer.BadParameter("--policy-config must be a JSON object")
    return overrides


def fail(message: str, hint: str = "fix the input named above") -> NoReturn:
    from streams.cli.errors import CliError

    raise CliError(message, hint)
