"""Hostile variants of a valid request, for poison-flood drills (``gar produce --poison``).

Each variant is derived deterministically from a valid record and names the reason code the
router must dead-letter it with, so a test can check every bad message by reason.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import orjson

from streams.ingress.rejected import RejectReason

Variant = Callable[[dict[str, Any], random.Random], bytes]


def _dump(d: dict[str, Any]) -> bytes:
    return orjson.dumps(d)


def _truncated(d: dict[str, Any], rng: random.Random) -> bytes:
    raw = _dump(d)
    return raw[: rng.randrange(1, len(raw) - 1)]


def _wrong_type(d: dict[str, Any], rng: random.Random) -> bytes:
    return _dump({**d, "input_tokens": rng.choice(["180", True, [180], {"n": 180}])})


def _huge_string(d: dict[str, Any], rng: random.Random) -> bytes:
    return _dump({**d, "tenant": "x" * rng.randrange(20_000, 60_000)})


def _nan(d: dict[str, Any], rng: random.Random) -> bytes:
    token = rng.choice([b"NaN", b"Infinity", b"-Infinity"])
    return _dump(d).replace(b'"ts_ms":', b'"floor":' + token + b',"ts_ms":')


def _negative_tokens(d: dict[str, Any], rng: random.Random) -> bytes:
    return _dump({**d, "input_tokens": rng.choice([-1, -(10**9), 10**12])})


def _unknown_model(d: dict[str, Any], rng: random.Random) -> bytes:
    return _dump({**d, "allow_models": [f"no-such-model-{rng.randrange(1000)}"]})


def _bad_version(d: dict[str, Any], rng: random.Random) -> bytes:
    return _dump({**d, "schema_version": rng.choice([0, 2, 99])})


def _duplicate_key(d: dict[str, Any], rng: random.Random) -> bytes:
    raw = _dump(d)
    return raw[:-1] + b',"tenant":"mallory"}'


def _invalid_utf8(d: dict[str, Any], rng: random.Random) -> bytes:
    return _dump(d).replace(b'"tenant":"', b'"tenant":"\xff\xfe', 1)


VARIANTS: dict[str, tuple[Variant, RejectReason]] = {
    "truncated": (_truncated, RejectReason.INVALID_JSON),
    "wrong_type": (_wrong_type, RejectReason.WRONG_TYPE),
    "huge_string": (_huge_string, RejectReason.TOO_LARGE),
    "nan": (_nan, RejectReason.NON_FINITE),
    "absurd_tokens": (_negative_tokens, RejectReason.OUT_OF_RANGE),
    "unknown_model": (_unknown_model, RejectReason.UNKNOWN_MODEL),
    "bad_version": (_bad_version, RejectReason.UNSUPPORTED_SCHEMA_VERSION),
    "duplicate_key": (_duplicate_key, RejectReason.DUPLICATE_KEY),
    "invalid_utf8": (_invalid_utf8, RejectReason.INVALID_UTF8),
}


def poison(record: dict[str, Any], rng: random.Random) -> tuple[bytes, RejectReason]:
    """One hostile variant of ``record`` and the reason the router must give."""
    name = rng.choice(sorted(VARIANTS))
    make, reason = VARIANTS[name]
    return make(record, rng), reason
