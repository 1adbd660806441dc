"""Load the versioned JSON Schemas in ``schemas/`` and validate records against them.

Validation is for contract tests, tools and audits, not the hot path (the parsers in
``streams.ingress`` are the fast equivalent for inputs).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jsonschema: the server's, not the client's (gar-streams[client])
    from jsonschema import Draft202012Validator

from streams.ingress.schema_fields import (
    CURRENT_VERSION,
    SCHEMA_DIR,
    load_schema,
    schema_path,
)

__all__ = [
    "SCHEMA_DIR",
    "TOPIC_SCHEMAS",
    "load_schema",
    "schema_path",
    "validation_errors",
    "validator",
]

TOPIC_SCHEMAS = tuple(CURRENT_VERSION)


@cache
def validator(name: str, version: int | None = None) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    schema = load_schema(name, version)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validation_errors(name: str, record: Any, version: int | None = None) -> list[str]:
    """Human-readable schema violations of ``record`` (empty when valid)."""
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in validator(name, version).iter_errors(record)
    ]
