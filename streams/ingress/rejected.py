"""``Rejected``: an input that did not become a typed value, as data (never an exception)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, NamedTuple

Kind = Literal["request", "completion", "carbon-intensity", "policy"]


class Stage(StrEnum):
    """Where in the pipeline the input was rejected."""

    DECODE = "decode"  # bytes -> JSON value
    VALIDATE = "validate"  # shape, types, limits, schema version
    CATALOG = "catalog"  # names checked against the catalog / known sets
    ROUTE = "route"  # the router could not decide (used by the app)
    INTERNAL = "internal"  # a bug; the input is kept so it can be replayed


class RejectReason(StrEnum):
    """Machine-readable reason codes (the dead-letter schema's ``reason`` enum)."""

    TOO_LARGE = "too_large"
    EMPTY = "empty"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    TOO_DEEP = "too_deep"
    DUPLICATE_KEY = "duplicate_key"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_SCHEMA_VERSION = "missing_schema_version"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    NULL_NOT_ALLOWED = "null_not_allowed"
    OUT_OF_RANGE = "out_of_range"
    NON_FINITE = "non_finite"
    STRING_TOO_LONG = "string_too_long"
    BAD_FORMAT = "bad_format"
    LIST_TOO_LONG = "list_too_long"
    DUPLICATE_ITEM = "duplicate_item"
    CONFLICTING_CONSTRAINTS = "conflicting_constraints"
    UNKNOWN_MODEL = "unknown_model"
    UNKNOWN_REGION = "unknown_region"
    UNKNOWN_CLIENT_REGION = "unknown_client_region"
    UNKNOWN_DATASET = "unknown_dataset"
    UNKNOWN_TENANT = "unknown_tenant"
    UNKNOWN_ZONE = "unknown_zone"
    KEY_NOT_TENANT = "key_not_tenant"  # a tenant-keyed topic's record keyed otherwise
    NO_CANDIDATE = "no_candidate"
    INTERNAL_ERROR = "internal_error"


class Source(NamedTuple):
    """Where an input came from (``-1`` when not read from Kafka). A named tuple, like
    ``Rejected``: a frozen dataclass costs a ``setattr`` per field (the poison-flood path)."""

    topic: str = ""
    partition: int = -1
    offset: int = -1
    timestamp_ms: int | None = None
    key: bytes | None = None


class Rejected(NamedTuple):
    """A rejected input with everything the dead-letter record needs.

    ``request_id``/``tenant`` are filled when they could be read and were well-formed, so an
    audit can account for every request as one decision or one dead letter.
    """

    kind: Kind
    stage: Stage
    reason: RejectReason
    message: str
    original: bytes
    source: Source
    field: str | None = None
    request_id: str | None = None
    tenant: str | None = None

    def at(self, source: Source) -> Rejected:
        """The same rejection read at ``source``."""
        return self._replace(source=source)
