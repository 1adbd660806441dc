"""Raw bytes -> top-level JSON object, with reason codes for every way that can fail.

orjson does the parsing (it rejects invalid UTF-8, NaN/Infinity literals, numbers that
overflow a double and nesting deeper than 1024). It silently keeps the last of duplicated
keys, so duplicates are detected here without a second parse in the common case. Every key
token in the text is followed by one colon, so the number of colons is at least the number of
key tokens at every level, which is at least the number of keys parsed. If the colon count
equals the number of top-level keys parsed, all three are equal: no nested objects and no
duplicates. If strings hold colons, the same argument runs on ``":`` (valid when no key has
whitespace before its colon). Otherwise (nested objects, pretty-printed input) an exact check
runs with the standard library.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from streams.ingress._errors import Bad
from streams.ingress._fields import safe_key
from streams.ingress.rejected import RejectReason, Stage

_SPACED_COLON = re.compile(rb'"[ \t\r\n]+:')


def decode_object(raw: bytes | bytearray | memoryview | None, max_bytes: int) -> dict[str, Any]:
    """Decode one JSON object; raise ``Bad`` (stage decode/validate) on anything else."""
    if raw is None or len(raw) == 0:
        raise Bad(RejectReason.EMPTY, "empty message (null or zero bytes)", stage=Stage.DECODE)
    if len(raw) > max_bytes:
        raise Bad(
            RejectReason.TOO_LARGE,
            f"message is {len(raw)} bytes, limit is {max_bytes}",
            stage=Stage.DECODE,
        )
    if not isinstance(raw, bytes):
        raw = bytes(raw)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _decode_error(raw, exc) from None
    if type(value) is not dict:
        raise Bad(
            RejectReason.NOT_AN_OBJECT,
            f"top-level JSON value must be an object, got {_json_type(value)}",
            stage=Stage.DECODE,
        )
    n_keys = len(value)
    if raw.count(b":") != n_keys and (
        raw.count(b'":') != n_keys or _SPACED_COLON.search(raw) is not None
    ):
        _exact_duplicate_check(raw)
    return value


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, val in pairs:
        if key in out:
            raise Bad(
                RejectReason.DUPLICATE_KEY,
                f"key {safe_key(key)!r} appears more than once in one object",
                field=safe_key(key),
                stage=Stage.DECODE,
            )
        out[key] = val
    return out


# One decoder for every check: ``json.loads(..., object_pairs_hook=...)`` builds a new one per
# call (a tenth of a poison flood is duplicate keys, each taking this path).
_DUPLICATES = json.JSONDecoder(object_pairs_hook=_reject_duplicates)


def _exact_duplicate_check(raw: bytes) -> None:
    # orjson already accepted the text (valid UTF-8), so the stdlib parser only has to spot
    # duplicates.
    try:
        _DUPLICATES.decode(raw.decode())
    except RecursionError:
        raise Bad(RejectReason.TOO_DEEP, "nesting too deep", stage=Stage.DECODE) from None


def _decode_error(raw: bytes, exc: orjson.JSONDecodeError) -> Bad:
    text = str(exc)
    if "UTF-8" in text or "surrogate" in text:
        return Bad(RejectReason.INVALID_UTF8, f"invalid UTF-8/unicode: {text}", stage=Stage.DECODE)
    if "depth" in text or "recursion" in text:
        return Bad(RejectReason.TOO_DEEP, f"nesting too deep: {text}", stage=Stage.DECODE)
    if "infinity" in text or b"NaN" in raw or b"Infinity" in raw:
        return Bad(
            RejectReason.NON_FINITE, f"NaN/Infinity are not JSON: {text}", stage=Stage.DECODE
        )
    if "end of data" in text or "EOF" in text:
        return Bad(RejectReason.INVALID_JSON, f"truncated JSON: {text}", stage=Stage.DECODE)
    return Bad(RejectReason.INVALID_JSON, f"invalid JSON: {text}", stage=Stage.DECODE)


def _json_type(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
    }.get(type(value), "null")
