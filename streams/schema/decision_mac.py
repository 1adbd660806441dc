"""The tamper-evident chain of decisions.v2 records.

Each record ends with ``"mac":"<key id>:<tag>"``, where ``tag`` is the base64url of the first 16
bytes of HMAC-SHA256(key, previous + LF + body): ``previous`` is the ``mac`` of the same tenant's
previous decision ("" for its first), ``body`` the record's bytes without the mac (the same JSON
ending at the field before it). The body holds the context digest, so the MAC binds the decision
to its context record, to its place in the tenant's chain and to every field. Whoever can write
to the topic but lacks the key cannot make a forged, reordered or deleted record chain
consistently; ``gar audit`` verifies with the keys it is given, each record naming its key by
id (key rotation: docs/operations.md).
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Mapping

TAG_BYTES = 16
TAG_CHARS = 22  # base64url of 16 bytes, unpadded
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,16}$")
_SUFFIX = re.compile(rb',"mac":(?:"([A-Za-z0-9._-]{1,16}):([A-Za-z0-9_-]{22})"|null)\}$')
_UNSIGNED = b',"mac":null}'


def _tag(key: bytes, previous: str, body: bytes) -> str:
    raw = hmac.digest(key, previous.encode() + b"\n" + body, "sha256")[:TAG_BYTES]
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class DecisionSigner:
    """The router's signer: one key, named by ``key_id`` in every record."""

    __slots__ = ("_key", "key_id")

    def __init__(self, key_id: str, key: bytes) -> None:
        if not KEY_ID.match(key_id):
            raise ValueError(f"key id must match {KEY_ID.pattern}")
        if len(key) < 16:
            raise ValueError("the decision MAC key must be at least 16 bytes")
        self.key_id = key_id
        self._key = key

    def __repr__(self) -> str:  # never the key
        return f"DecisionSigner(key_id={self.key_id!r})"

    def seal(self, body: bytes, previous: str) -> tuple[bytes, str]:
        """(record bytes, its mac) for ``body`` (a JSON object) chained to ``previous``."""
        mac = f"{self.key_id}:{_tag(self._key, previous, body)}"
        return body[:-1] + b',"mac":"' + mac.encode() + b'"}', mac


def seal_unsigned(body: bytes) -> bytes:
    """Record bytes with ``"mac":null`` (a router configured without a key)."""
    return body[:-1] + _UNSIGNED


def split_mac(value: bytes) -> tuple[bytes, str | None] | None:
    """(body, mac or None if unsigned) of a record's bytes; None if it does not end in a
    well-formed mac field."""
    m = _SUFFIX.search(value)
    if m is None:
        return None
    body = value[: m.start()] + b"}"
    if m.group(1) is None:
        return body, None
    return body, f"{m.group(1).decode()}:{m.group(2).decode()}"


def verify(keys: Mapping[str, bytes], body: bytes, mac: str, previous: str) -> str | None:
    """None if ``mac`` is the tag of ``body`` chained to ``previous`` under the key it names,
    else why not."""
    key_id, _, tag = mac.partition(":")
    key = keys.get(key_id)
    if key is None:
        return f"no key with id {key_id!r}"
    if not hmac.compare_digest(_tag(key, previous, body), tag):
        return "MAC does not match"
    return None
