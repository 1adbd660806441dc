"""Raw bytes on the completions topic -> ``Completion | Rejected`` (schema ``completions.v1``)."""

from __future__ import annotations

from typing import Any

from streams.core.inputs import Completion
from streams.ingress import _fields as f
from streams.ingress._run import run
from streams.ingress.context import PERMISSIVE, IngressContext
from streams.ingress.rejected import Rejected, RejectReason, Source
from streams.ingress.schema_fields import allowed_keys, required_keys

SUPPORTED_VERSIONS = frozenset({1})
_REQUIRED = required_keys("completions")
_KEYS = allowed_keys("completions")
_REQUIRED_SET = frozenset(_REQUIRED)


def parse_completion(
    raw: bytes | None, ctx: IngressContext = PERMISSIVE, source: Source | None = None
) -> Completion | Rejected:
    """Parse one completions-topic message. Never raises."""
    return run("completion", raw, ctx.limits.max_completion_bytes, _build, ctx, source)


def _build(d: dict[str, Any], ctx: IngressContext) -> Completion:
    lim = ctx.limits
    version = d.get("schema_version")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        f.check_version(d, SUPPORTED_VERSIONS)
    if not (d.keys() <= _KEYS and d.keys() >= _REQUIRED_SET):
        f.check_keys(d, _KEYS, _REQUIRED)
    request_id = f.unique_id(d, "request_id", lim.max_id_chars)
    tenant = f.known(
        f.name(d, "tenant", lim.max_name_chars), ctx.tenants, "tenant", RejectReason.UNKNOWN_TENANT
    )
    dataset = f.known(
        f.name(d, "dataset", lim.max_name_chars),
        ctx.datasets,
        "dataset",
        RejectReason.UNKNOWN_DATASET,
    )
    model, region = d["model"], d["region"]
    # Catalog names are trusted: a hit skips the format check.
    if ctx.models is None or type(model) is not str or model not in ctx.models:
        model = f.known(
            f.name(d, "model", lim.max_model_chars), ctx.models, "model", RejectReason.UNKNOWN_MODEL
        )
    if ctx.regions is None or type(region) is not str or region not in ctx.regions:
        region = f.known(
            f.name(d, "region", lim.max_name_chars),
            ctx.regions,
            "region",
            RejectReason.UNKNOWN_REGION,
        )
    ts_ms = d["ts_ms"]
    if type(ts_ms) is not int or not lim.min_ts_ms <= ts_ms < lim.max_ts_ms:
        ts_ms = f.integer(d, "ts_ms", lim.min_ts_ms, lim.max_ts_ms - 1)
    input_tokens = d["input_tokens"]
    if type(input_tokens) is not int or not 0 <= input_tokens <= lim.max_input_tokens:
        input_tokens = f.integer(d, "input_tokens", 0, lim.max_input_tokens)
    output_tokens = d["output_tokens"]
    if type(output_tokens) is not int or not 0 <= output_tokens <= lim.max_output_tokens:
        output_tokens = f.integer(d, "output_tokens", 0, lim.max_output_tokens)
    correct = d.get("correct")
    if correct is not None and type(correct) is not bool:
        correct = f.boolean(d, "correct", optional=True)
    return Completion(
        request_id,
        tenant,
        model,
        region,
        dataset,
        ts_ms,
        f.number(d, "latency_ms", 0.0, lim.max_latency_ms),
        input_tokens,
        output_tokens,
        f.number(d, "energy_j", 0.0, lim.max_energy_j, optional=True),
        correct,
    )
