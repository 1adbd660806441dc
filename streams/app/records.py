"""Output records of the router as bytes: thin seam over edges' builders in ``streams.schema``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.core.inputs import Request
from streams.ingress.rejected import Rejected, Source
from streams.schema import dead_letter_record, decision_record, dispatch_record, encode


def decision_bytes(record: Mapping[str, Any], src: Source) -> bytes:
    """The decision record plus the offset of the request it decided."""
    return encode(decision_record(record, src))


def dispatch_bytes(req: Request, decision: Mapping[str, Any]) -> bytes:
    """Derived from the request and its decision record only, so a dispatch re-emitted after
    recovery is byte-identical."""
    return encode(dispatch_record(req, decision))


def dead_letter_bytes(rej: Rejected, now_ms: int) -> bytes:
    return encode(dead_letter_record(rej, rejected_at_ms=now_ms))
