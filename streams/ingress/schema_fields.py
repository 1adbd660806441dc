"""Each topic's fields as its JSON Schema in ``schemas/`` declares them: the parsers' allowed and
required keys and the policy config's value kinds and ranges are read from the schemas, so a
field is declared once (the schema) and checked twice (the fast parser here, ``jsonschema`` in
the contract tests and tools)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from streams.config import PACKAGE_DIR

# schemas/ at the repository root, shipped in the package through this link.
SCHEMA_DIR = PACKAGE_DIR / "resources" / "schemas"
CURRENT_VERSION = {
    **{
        name: 1
        for name in (
            "requests",
            "completions",
            "carbon-intensity",
            "policy",
            "dispatch",
            "dead-letter",
            "contexts",
        )
    },
    "decisions": 2,
}
VERSION_KEY = "schema_version"


class ConfigField(NamedTuple):
    """How the parser checks one policy config field. Kinds: num, num? (nullable), int, bool,
    str (hi = max length), choice (one of ``choices``), map (name -> num in [lo, hi]),
    objects (name -> an object whose fields are ``fields``)."""

    kind: str
    lo: float
    hi: float
    choices: frozenset[str] = frozenset()
    fields: tuple[tuple[str, ConfigField], ...] = ()
    required: tuple[str, ...] = ()


def schema_path(name: str, version: int | None = None) -> Path:
    v = CURRENT_VERSION[name] if version is None else version
    return SCHEMA_DIR / f"{name}.v{v}.json"


@cache
def load_schema(name: str, version: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_path(name, version).read_text(encoding="utf-8"))
    return schema


def allowed_keys(name: str) -> frozenset[str]:
    """Top-level fields a record of the current version may carry."""
    return frozenset(load_schema(name)["properties"])


def required_keys(name: str) -> tuple[str, ...]:
    """Required top-level fields in schema order, without the version (checked first)."""
    return tuple(k for k in load_schema(name)["required"] if k != VERSION_KEY)


def config_fields() -> dict[str, ConfigField]:
    """The policy config's fields (``policy`` schema, ``config`` object) as parser kinds."""
    schema = load_schema("policy")
    config = schema["properties"]["config"]["properties"]
    return {key: _kind(spec, schema["$defs"]) for key, spec in config.items()}


def _kind(spec: dict[str, Any], defs: dict[str, Any]) -> ConfigField:
    if "$ref" in spec:
        spec = defs[spec["$ref"].rsplit("/", 1)[-1]]
    if "enum" in spec:
        values = spec["enum"]
        if all(isinstance(v, str) for v in values):
            return ConfigField("choice", 0, 0, frozenset(values))
        return ConfigField("num", min(values), max(values))  # the core checks membership
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    if "object" in types:
        values = spec["additionalProperties"]
        if "$ref" in values:  # name -> object (tenant_overrides)
            sub = defs[values["$ref"].rsplit("/", 1)[-1]]
            inner = tuple((k, _kind(v, defs)) for k, v in sub["properties"].items())
            return ConfigField("objects", 0, 0, fields=inner, required=tuple(sub["required"]))
        return ConfigField("map", values["minimum"], values["maximum"])
    if "string" in types:
        return ConfigField("str", spec["minLength"], spec["maxLength"])
    if "boolean" in types:
        return ConfigField("bool", 0, 0)
    if "integer" in types:
        return ConfigField("int", spec["minimum"], spec["maximum"])
    kind = "num?" if "null" in types else "num"
    return ConfigField(kind, spec["minimum"], spec["maximum"])
