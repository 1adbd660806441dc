"""Routing-context records (topic ``contexts``, schema ``contexts.v1``): bytes and digests.

A context record is the JSON of ``streams.core.context_inputs.ContextInputs`` plus the schema
version and the catalog's digest; its key is its digest, base64url of the blake2b-128 of the
record's bytes, which decisions.v2 records reference. Content-addressed: two workers that build
the same context write the same key and bytes, and a record whose bytes do not hash to its key
is not the context any decision was made in.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson

from streams.core.catalog import Catalog
from streams.core.context_inputs import ContextInputs
from streams.core.errors import CoreError

CONTEXT_SCHEMA_VERSION = 1
DIGEST_BYTES = 16


class ContextRecordError(ValueError):
    """A context record that cannot be used (the message says why)."""


def b64_digest(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def digest_of(value: bytes) -> str:
    """The key of a context record with bytes ``value``."""
    return b64_digest(hashlib.blake2b(value, digest_size=DIGEST_BYTES).digest())


def catalog_digest(catalog: Catalog) -> str:
    """Digest of the catalog's content (its JSON with sorted keys), so a context names the exact
    catalog it priced with, not only its version label."""
    return digest_of(orjson.dumps(catalog.to_dict(), option=orjson.OPT_SORT_KEYS))


def context_record(inputs: ContextInputs, catalog_digest_: str) -> dict[str, Any]:
    body = inputs.to_dict()
    return {
        "schema_version": CONTEXT_SCHEMA_VERSION,
        "catalog_version": body.pop("catalog_version"),
        "catalog_digest": catalog_digest_,
        **body,
    }


def context_bytes(inputs: ContextInputs, catalog_digest_: str) -> tuple[str, bytes]:
    """(digest = key, value) of the context record of ``inputs``."""
    value = orjson.dumps(context_record(inputs, catalog_digest_), option=orjson.OPT_SERIALIZE_NUMPY)
    return digest_of(value), value


def parse_context(key: bytes | None, value: bytes | None) -> tuple[str, str, ContextInputs]:
    """(digest, catalog digest, inputs) of a record read back; raises ``ContextRecordError``
    when its bytes do not hash to its key or it is not a usable contexts.v1 record."""
    if value is None:
        raise ContextRecordError("empty record")
    digest = digest_of(value)
    if key is not None and key.decode("utf-8", "replace") != digest:
        raise ContextRecordError(
            f"bytes hash to {digest}, not to the key {key.decode('utf-8', 'replace')!r}"
        )
    try:
        d = orjson.loads(value)
        if not isinstance(d, dict) or d.get("schema_version") != CONTEXT_SCHEMA_VERSION:
            raise ContextRecordError(f"not a contexts.v{CONTEXT_SCHEMA_VERSION} record")
        return digest, str(d["catalog_digest"]), ContextInputs.from_dict(d)
    except (orjson.JSONDecodeError, KeyError, CoreError) as e:
        raise ContextRecordError(f"unusable: {e}") from e
