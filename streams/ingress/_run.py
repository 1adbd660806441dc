"""The one place where a parser's outcome becomes ``T | Rejected``: nothing raises past here."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from streams.core.errors import CoreError
from streams.ingress._decode import decode_object
from streams.ingress._errors import Bad
from streams.ingress.context import IngressContext
from streams.ingress.limits import ID_PATTERN
from streams.ingress.rejected import Kind, Rejected, RejectReason, Source, Stage

T = TypeVar("T")
_ID_RE = re.compile(ID_PATTERN.rstrip("$") + r"\Z")


def run(
    kind: Kind,
    raw: bytes | None,
    max_bytes: int,
    build: Callable[[dict[str, Any], IngressContext], T],
    ctx: IngressContext,
    source: Source | None,
) -> T | Rejected:
    d: dict[str, Any] | None = None
    try:
        d = decode_object(raw, max_bytes)
        return build(d, ctx)
    except Bad as bad:
        return _rejected(kind, raw, source, d, bad.stage, bad.reason, bad.message, bad.field)
    except CoreError as exc:
        # The core's own constructor checks are a second line: our checks should have caught it.
        return _rejected(
            kind, raw, source, d, Stage.VALIDATE, RejectReason.OUT_OF_RANGE, str(exc), None
        )
    except Exception as exc:  # a parser bug must not crash a worker; keep the input for replay
        msg = f"internal error while parsing: {type(exc).__name__}: {exc}"[:1000]
        return _rejected(
            kind, raw, source, d, Stage.INTERNAL, RejectReason.INTERNAL_ERROR, msg, None
        )


def _rejected(
    kind: Kind,
    raw: bytes | None,
    source: Source | None,
    d: dict[str, Any] | None,
    stage: Stage,
    reason: RejectReason,
    message: str,
    field: str | None,
) -> Rejected:
    original = b"" if raw is None else bytes(raw)
    return Rejected(
        kind=kind,
        stage=stage,
        reason=reason,
        message=message,
        original=original,
        source=source if source is not None else Source(),
        field=field,
        request_id=_safe_id(d, "request_id", 128),
        tenant=_safe_id(d, "tenant", 64),
    )


def _safe_id(d: dict[str, Any] | None, key: str, max_chars: int) -> str | None:
    """The value of ``key`` if it is a well-formed id (never echo hostile text into keys)."""
    if d is None:
        return None
    v = d.get(key)
    if type(v) is str and 0 < len(v) <= max_chars and _ID_RE.match(v):
        return v
    return None
