"""Load the versioned JSON Schemas in ``schemas/`` and validate records against them.

Validation is for contract tests, tools and audits, not the hot path (the parsers in
``streams.ingress`` are the fast equivalent for inputs).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from streams.config import REPO_ROOT

SCHEMA_DIR = REPO_ROOT / "schemas"
TOPIC_SCHEMAS = (
    "requests",
    "completions",
    "carbon-intensity",
    "policy",
    "decisions",
    "dispatch",
    "dead-letter",
)
CURRENT_VERSION = {name: 1 for name in TOPIC_SCHEMAS}


def schema_path(name: str, version: int | None = None) -> Path:
    v = CURRENT_VERSION[name] if version is None else version
    return SCHEMA_DIR / f"{name}.v{v}.json"


@cache
def load_schema(name: str, version: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_path(name, version).read_text(encoding="utf-8"))
    return schema


@cache
def validator(name: str, version: int | None = None) -> Draft202012Validator:
    schema = load_schema(name, version)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validation_errors(name: str, record: Any, version: int | None = None) -> list[str]:
    """Human-readable schema violations of ``record`` (empty when valid)."""
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in validator(name, version).iter_errors(record)
    ]
