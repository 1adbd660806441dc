"""Field checks shared by the parsers. Each returns the typed value or raises ``Bad``.

Checks use ``type(x) is ...`` so that JSON ``true`` is never taken for the integer 1. JSON
Schema 2020-12 counts ``2.0`` as an integer, so integral floats are accepted for integer
fields (and converted) to agree with the schemas.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from typing import Any, Final

from streams.ingress._errors import Bad
from streams.ingress.limits import ID_PATTERN
from streams.ingress.rejected import RejectReason, Stage

MISSING: Final = object()
_ID_RE = re.compile(ID_PATTERN.rstrip("$") + r"\Z")

# Names seen before (tenants, datasets, regions) skip the regex; bounded so a flood of
# distinct hostile names cannot grow memory.
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_MAX = 65_536


def check_version(d: Mapping[str, Any], supported: Collection[int]) -> int:
    v = d.get("schema_version", MISSING)
    if v is MISSING:
        raise Bad(
            RejectReason.MISSING_SCHEMA_VERSION, "schema_version is required", "schema_version"
        )
    if type(v) is float and math.isfinite(v) and v.is_integer():
        v = int(v)  # JSON Schema's "const": 1 accepts 1.0
    if type(v) is not int:
        raise Bad(
            RejectReason.WRONG_TYPE,
            f"schema_version must be an integer, got {_t(v)}",
            "schema_version",
        )
    if v not in supported:
        raise Bad(
            RejectReason.UNSUPPORTED_SCHEMA_VERSION,
            f"schema_version {v} is not supported (supported: {sorted(supported)})",
            "schema_version",
        )
    return v


def check_keys(d: Mapping[str, Any], allowed: frozenset[str], required: tuple[str, ...]) -> None:
    if not d.keys() <= allowed:
        extra = sorted(k for k in d if k not in allowed)
        raise Bad(
            RejectReason.UNKNOWN_FIELD,
            f"unknown field(s) {[safe_key(k) for k in extra[:5]]} for this schema version",
            safe_key(extra[0]),
        )
    for key in required:
        if key not in d:
            raise Bad(RejectReason.MISSING_FIELD, f"{key} is required", key)


def name(d: Mapping[str, Any], key: str, max_chars: int) -> str:
    """A required identifier-like string (tenant, dataset, region, request id, ...)."""
    v = d[key]
    if type(v) is not str:
        raise _wrong(key, "a string", v)
    if v in _GOOD_NAMES and len(v) <= max_chars:  # cached names passed the format check
        return v
    return check_name(key, v, max_chars)


def check_name(key: str, v: str, max_chars: int) -> str:
    _check_format(key, v, max_chars)
    if len(_GOOD_NAMES) < _GOOD_NAMES_MAX:
        _GOOD_NAMES.add(v)
    return v


def _check_format(key: str, v: str, max_chars: int) -> None:
    if len(v) > max_chars:
        raise Bad(
            RejectReason.STRING_TOO_LONG, f"{key} is {len(v)} chars, limit is {max_chars}", key
        )
    if not v or _ID_RE.match(v) is None:
        raise Bad(
            RejectReason.BAD_FORMAT,
            f"{key} must be 1-{max_chars} chars of [A-Za-z0-9._:/@#+=-] starting with a "
            f"letter or digit, got {clip(v)!r}",
            key,
        )


def unique_id(d: Mapping[str, Any], key: str, max_chars: int) -> str:
    """A required id that is different on every message (not cached)."""
    v = d[key]
    if type(v) is not str:
        raise _wrong(key, "a string", v)
    _check_format(key, v, max_chars)
    return v


def known(value: str, allowed: Collection[str] | None, key: str, reason: RejectReason) -> str:
    if allowed is not None and value not in allowed:
        raise Bad(reason, f"{key} {clip(value)!r} is not known", key, Stage.CATALOG)
    return value


def text(d: Mapping[str, Any], key: str, max_chars: int) -> str | None:
    """An optional free-text field (printable, bounded)."""
    v = d.get(key)
    if v is None:
        return None
    if type(v) is not str:
        raise _wrong(key, "a string or null", v)
    if len(v) > max_chars:
        raise Bad(
            RejectReason.STRING_TOO_LONG, f"{key} is {len(v)} chars, limit is {max_chars}", key
        )
    return v


def integer(d: Mapping[str, Any], key: str, lo: int, hi: int, *, optional: bool = False) -> Any:
    """An integer in ``[lo, hi]``; ``None`` allowed when ``optional``."""
    v = d.get(key)
    if type(v) is not int:
        if v is None and optional:
            return None
        if type(v) is float and math.isfinite(v) and v.is_integer():
            v = int(v)
        elif v is None:
            raise Bad(RejectReason.NULL_NOT_ALLOWED, f"{key} must not be null", key)
        else:
            raise _wrong(key, "an integer", v)
    if v < lo or v > hi:
        raise Bad(RejectReason.OUT_OF_RANGE, f"{key} must be in [{lo}, {hi}], got {v}", key)
    return v


def number(
    d: Mapping[str, Any],
    key: str,
    lo: float,
    hi: float,
    *,
    optional: bool = False,
    lo_exclusive: bool = False,
) -> Any:
    """A finite number in ``[lo, hi]`` (``(lo, hi]`` if ``lo_exclusive``), as float."""
    v: Any = d.get(key)
    t = type(v)
    if t is float:
        if not math.isfinite(v):
            raise Bad(RejectReason.NON_FINITE, f"{key} must be finite", key)
    elif t is int:
        v = float(v)
    elif v is None:
        if optional:
            return None
        raise Bad(RejectReason.NULL_NOT_ALLOWED, f"{key} must not be null", key)
    else:
        raise _wrong(key, "a number", v)
    if v < lo or v > hi or (lo_exclusive and v == lo):
        lo_b = "(" if lo_exclusive else "["
        raise Bad(RejectReason.OUT_OF_RANGE, f"{key} must be in {lo_b}{lo}, {hi}], got {v}", key)
    return v


def boolean(d: Mapping[str, Any], key: str, *, optional: bool = False) -> Any:
    v = d.get(key)
    if type(v) is bool:
        return v
    if v is None:
        if optional:
            return None
        raise Bad(RejectReason.NULL_NOT_ALLOWED, f"{key} must not be null", key)
    raise _wrong(key, "a boolean", v)


def name_list(
    d: Mapping[str, Any],
    key: str,
    max_items: int,
    max_chars: int,
    allowed: frozenset[str] | None,
    unknown: RejectReason,
) -> tuple[str, ...] | None:
    """An optional list of unique names, each in ``allowed`` (when given)."""
    v = d.get(key)
    if v is None:
        return None
    if type(v) is not list:
        raise _wrong(key, "an array of strings or null", v)
    if len(v) > max_items:
        raise Bad(
            RejectReason.LIST_TOO_LONG, f"{key} has {len(v)} items, limit is {max_items}", key
        )
    out = tuple(v)
    try:  # fast path: every entry is a known catalog name
        known_all = allowed is not None and allowed.issuperset(out)
    except TypeError:  # an unhashable entry (array/object): reported below
        known_all = False
    if not known_all:
        for item in out:
            if type(item) is not str:
                raise _wrong(key, "an array of strings", item)
            if allowed is not None and item in allowed:
                continue
            check_name(key, item, max_chars)
            if allowed is not None:
                raise Bad(unknown, f"{key} names unknown {clip(item)!r}", key, Stage.CATALOG)
    if len(set(out)) != len(out):
        raise Bad(RejectReason.DUPLICATE_ITEM, f"{key} lists the same entry twice", key)
    return out


def one_of(d: Mapping[str, Any], key: str, choices: frozenset[str], *, optional: bool) -> Any:
    v = d.get(key)
    if v is None and optional:
        return None
    if type(v) is not str or v not in choices:
        raise Bad(
            RejectReason.BAD_FORMAT if type(v) is str else RejectReason.WRONG_TYPE,
            f"{key} must be one of {sorted(choices)}, got {clip(repr(v))}",
            key,
        )
    return v


def _wrong(key: str, expected: str, v: Any) -> Bad:
    return Bad(RejectReason.WRONG_TYPE, f"{key} must be {expected}, got {_t(v)}", key)


def _t(v: Any) -> str:
    if type(v) is bool:
        return "boolean"
    if v is None:
        return "null"
    return {dict: "object", list: "array", str: "string", int: "integer", float: "number"}.get(
        type(v), type(v).__name__
    )


def clip(s: str, limit: int = 80) -> str:
    return s if len(s) <= limit else s[:limit] + "..."


def safe_key(key: str, limit: int = 80) -> str:
    """A field name from the input, made printable ASCII (it lands in logs and records)."""
    return clip(ascii(key)[1:-1], limit)
