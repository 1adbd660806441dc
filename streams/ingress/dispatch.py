"""Raw bytes on a ``dispatch.<model>`` topic -> ``DispatchOrder | Rejected`` (for fleets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.ingress import _fields as f
from streams.ingress._run import run
from streams.ingress.context import PERMISSIVE, IngressContext
from streams.ingress.rejected import Rejected, RejectReason, Source
from streams.ingress.schema_fields import allowed_keys, required_keys

SUPPORTED_VERSIONS = frozenset({1})
_REQUIRED = required_keys("dispatch")
_KEYS = allowed_keys("dispatch")


@dataclass(frozen=True, slots=True)
class DispatchOrder:
    """One routed request, as a serving fleet sees it."""

    request_id: str
    tenant: str
    dataset: str
    model: str
    region: str
    candidate_index: int
    input_tokens: int
    output_tokens_est: float | None
    client_region: str
    ts_ms: int
    policy: str
    reason: str


def parse_dispatch(
    raw: bytes | None, ctx: IngressContext = PERMISSIVE, source: Source | None = None
) -> DispatchOrder | Rejected:
    """Parse one dispatch record. Never raises (``kind`` of a rejection is ``request``)."""
    return run("request", raw, ctx.limits.max_request_bytes, _build, ctx, source)


def _build(d: dict[str, Any], ctx: IngressContext) -> DispatchOrder:
    lim = ctx.limits
    f.check_version(d, SUPPORTED_VERSIONS)
    f.check_keys(d, _KEYS, _REQUIRED)
    return DispatchOrder(
        request_id=f.unique_id(d, "request_id", lim.max_id_chars),
        tenant=f.name(d, "tenant", lim.max_name_chars),
        dataset=f.name(d, "dataset", lim.max_name_chars),
        model=f.known(
            f.name(d, "model", lim.max_model_chars), ctx.models, "model", RejectReason.UNKNOWN_MODEL
        ),
        region=f.known(
            f.name(d, "region", lim.max_name_chars),
            ctx.regions,
            "region",
            RejectReason.UNKNOWN_REGION,
        ),
        candidate_index=f.integer(d, "candidate_index", 0, 1_000_000),
        input_tokens=f.integer(d, "input_tokens", 1, lim.max_input_tokens),
        output_tokens_est=f.number(
            d, "output_tokens_est", 0.0, float(lim.max_output_tokens), optional=True
        ),
        client_region=f.name(d, "client_region", lim.max_name_chars),
        ts_ms=f.integer(d, "ts_ms", lim.min_ts_ms, lim.max_ts_ms - 1),
        policy=f.text(d, "policy", 64) or "",
        reason=f.text(d, "reason", 64) or "",
    )
