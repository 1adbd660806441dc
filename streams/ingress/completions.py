"""Raw bytes on the completions topic -> ``Completion | Rejected`` (schema ``completions.v1``)."""

from __future__ import annotations

from typing import Any

from streams.core.inputs import Completion
from streams.ingress import _fields as f
from streams.ingress._run import run
from streams.ingress.context import PERMISSIVE, IngressContext
from streams.ingress.rejected import Reason, Rejected, Source

SUPPORTED_VERSIONS = frozenset({1})
_REQUIRED = (
    "request_id",
    "tenant",
    "model",
    "region",
    "dataset",
    "ts_ms",
    "latency_ms",
    "input_tokens",
    "output_tokens",
)
_KEYS = frozenset(("schema_version", *_REQUIRED, "energy_j", "correct"))


def parse_completion(
    raw: bytes | None, ctx: IngressContext = PERMISSIVE, source: Source | None = None
) -> Completion | Rejected:
    """Parse one completions-topic message. Never raises."""
    return run("completion", raw, ctx.limits.max_completion_bytes, _build, ctx, source)


def _build(d: dict[str, Any], ctx: IngressContext) -> Completion:
    lim = ctx.limits
    f.check_version(d, SUPPORTED_VERSIONS)
    f.check_keys(d, _KEYS, _REQUIRED)
    return Completion(
        request_id=f.unique_id(d, "request_id", lim.max_id_chars),
        tenant=f.known(
            f.name(d, "tenant", lim.max_name_chars), ctx.tenants, "tenant", Reason.UNKNOWN_TENANT
        ),
        model=f.known(
            f.name(d, "model", lim.max_model_chars), ctx.models, "model", Reason.UNKNOWN_MODEL
        ),
        region=f.known(
            f.name(d, "region", lim.max_name_chars), ctx.regions, "region", Reason.UNKNOWN_REGION
        ),
        dataset=f.known(
            f.name(d, "dataset", lim.max_name_chars),
            ctx.datasets,
            "dataset",
            Reason.UNKNOWN_DATASET,
        ),
        ts_ms=f.integer(d, "ts_ms", lim.min_ts_ms, lim.max_ts_ms - 1),
        latency_ms=f.number(d, "latency_ms", 0.0, lim.max_latency_ms),
        input_tokens=f.integer(d, "input_tokens", 0, lim.max_input_tokens),
        output_tokens=f.integer(d, "output_tokens", 0, lim.max_output_tokens),
        energy_j=f.number(d, "energy_j", 0.0, lim.max_energy_j, optional=True),
        correct=f.boolean(d, "correct", optional=True),
    )
