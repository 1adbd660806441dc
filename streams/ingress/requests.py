"""Raw bytes on the requests topic -> ``Request | Rejected`` (schema ``requests.v1``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from streams.core.inputs import Request
from streams.ingress import _fields as f
from streams.ingress._errors import Bad
from streams.ingress._run import run
from streams.ingress.context import PERMISSIVE, IngressContext
from streams.ingress.rejected import Rejected, RejectReason, Source, Stage
from streams.ingress.schema_fields import allowed_keys, required_keys

SUPPORTED_VERSIONS = frozenset({1})
_REQUIRED = required_keys("requests")
_KEYS = allowed_keys("requests")
_OVERRIDES = frozenset(
    ("floor", "latency_cap_ms", "allow_models", "deny_models", "allow_regions", "deny_regions")
)
_REQUIRED_SET = frozenset(_REQUIRED)


_FIELDS = (
    "request_id",
    "tenant",
    "dataset",
    "input_tokens",
    "output_tokens_est",
    "client_region",
    "ts_ms",
    "floor",
    "latency_cap_ms",
    "allow_models",
    "deny_models",
    "allow_regions",
    "deny_regions",
)


def _slot_setters() -> tuple[Callable[[Request, Any], None], ...] | None:
    if tuple(f.name for f in dataclasses.fields(Request)) != _FIELDS:
        return None  # the class changed: use the checked constructor
    try:
        return tuple(getattr(Request, name).__set__ for name in _FIELDS)
    except AttributeError:  # not a slots class any more: use the checked constructor
        return None


_SETTERS = _slot_setters()
_new = object.__new__
if _SETTERS is not None:
    (
        _set_id,
        _set_tenant,
        _set_dataset,
        _set_in,
        _set_out,
        _set_client,
        _set_ts,
        _set_floor,
        _set_cap,
        _set_am,
        _set_dm,
        _set_ar,
        _set_dr,
    ) = _SETTERS


def _request(
    request_id: str,
    tenant: str,
    dataset: str,
    input_tokens: int,
    output_tokens_est: int | None,
    client_region: str,
    ts_ms: int,
    floor: float | None,
    latency_cap_ms: float | None,
    allow_models: tuple[str, ...] | None,
    deny_models: tuple[str, ...] | None,
    allow_regions: tuple[str, ...] | None,
    deny_regions: tuple[str, ...] | None,
) -> Request:
    """``Request(...)`` without its ``__post_init__`` re-check: every value was checked
    here already, more strictly (types, ranges, catalog names; the fuzz tests assert that the
    checked constructor accepts every parsed request). One slot store per field, unrolled
    (a loop over the setters cost about as much again)."""
    if _SETTERS is None:
        return Request(
            request_id,
            tenant,
            dataset,
            input_tokens,
            output_tokens_est,
            client_region,
            ts_ms,
            floor,
            latency_cap_ms,
            allow_models,
            deny_models,
            allow_regions,
            deny_regions,
        )
    req = _new(Request)
    _set_id(req, request_id)
    _set_tenant(req, tenant)
    _set_dataset(req, dataset)
    _set_in(req, input_tokens)
    _set_out(req, output_tokens_est)
    _set_client(req, client_region)
    _set_ts(req, ts_ms)
    _set_floor(req, floor)
    _set_cap(req, latency_cap_ms)
    _set_am(req, allow_models)
    _set_dm(req, deny_models)
    _set_ar(req, allow_regions)
    _set_dr(req, deny_regions)
    return req


def parse_request(
    raw: bytes | None, ctx: IngressContext = PERMISSIVE, source: Source | None = None
) -> Request | Rejected:
    """Parse one requests-topic message. Never raises."""
    return run("request", raw, ctx.limits.max_request_bytes, _build, ctx, source)


def _build(d: dict[str, Any], ctx: IngressContext) -> Request:
    lim = ctx.limits
    version = d.get("schema_version")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        f.check_version(d, SUPPORTED_VERSIONS)
    if not (d.keys() <= _KEYS and d.keys() >= _REQUIRED_SET):
        f.check_keys(d, _KEYS, _REQUIRED)
    request_id = f.unique_id(d, "request_id", lim.max_id_chars)
    tenant = f.name(d, "tenant", lim.max_name_chars)
    dataset = f.name(d, "dataset", lim.max_name_chars)
    client_region = f.name(d, "client_region", lim.max_name_chars)
    if ctx.tenants is not None or ctx.datasets is not None or ctx.client_regions is not None:
        f.known(tenant, ctx.tenants, "tenant", RejectReason.UNKNOWN_TENANT)
        f.known(dataset, ctx.datasets, "dataset", RejectReason.UNKNOWN_DATASET)
        f.known(
            client_region, ctx.client_regions, "client_region", RejectReason.UNKNOWN_CLIENT_REGION
        )
    input_tokens = d["input_tokens"]
    if type(input_tokens) is not int or not 1 <= input_tokens <= lim.max_input_tokens:
        input_tokens = f.integer(d, "input_tokens", 1, lim.max_input_tokens)
    output_tokens_est = d.get("output_tokens_est")
    if output_tokens_est is not None and (
        type(output_tokens_est) is not int or not 0 <= output_tokens_est <= lim.max_output_tokens
    ):
        output_tokens_est = f.integer(
            d, "output_tokens_est", 0, lim.max_output_tokens, optional=True
        )
    ts_ms = d["ts_ms"]
    if type(ts_ms) is not int or not lim.min_ts_ms <= ts_ms < lim.max_ts_ms:
        ts_ms = f.integer(d, "ts_ms", lim.min_ts_ms, lim.max_ts_ms - 1)
    if _OVERRIDES.isdisjoint(d):
        return _request(
            request_id,
            tenant,
            dataset,
            input_tokens,
            output_tokens_est,
            client_region,
            ts_ms,
            None,
            None,
            None,
            None,
            None,
            None,
        )
    return _with_overrides(
        d, ctx, request_id, tenant, dataset, input_tokens, output_tokens_est, client_region, ts_ms
    )


def _with_overrides(
    d: dict[str, Any],
    ctx: IngressContext,
    request_id: str,
    tenant: str,
    dataset: str,
    input_tokens: int,
    output_tokens_est: int | None,
    client_region: str,
    ts_ms: int,
) -> Request:
    lim = ctx.limits
    models, regions = ctx.models, ctx.regions
    m_chars, r_chars, items = lim.max_model_chars, lim.max_name_chars, lim.max_list_items
    # Each override is checked only when present: most requests carry one or two.
    allow_models = deny_models = allow_regions = deny_regions = None
    floor = latency_cap_ms = None
    if "allow_models" in d:
        allow_models = _name_list(
            d, "allow_models", items, m_chars, models, RejectReason.UNKNOWN_MODEL
        )
    if "deny_models" in d:
        deny_models = _name_list(
            d, "deny_models", items, m_chars, models, RejectReason.UNKNOWN_MODEL
        )
    if "allow_regions" in d:
        allow_regions = _name_list(
            d, "allow_regions", items, r_chars, regions, RejectReason.UNKNOWN_REGION
        )
    if "deny_regions" in d:
        deny_regions = _name_list(
            d, "deny_regions", items, r_chars, regions, RejectReason.UNKNOWN_REGION
        )
    if allow_models is not None:
        _check_not_empty("models", allow_models, deny_models)
    if allow_regions is not None:
        _check_not_empty("regions", allow_regions, deny_regions)
    if "floor" in d:
        floor = f.number(d, "floor", 0.0, 1.0, optional=True)
    if "latency_cap_ms" in d:
        latency_cap_ms = f.number(
            d, "latency_cap_ms", 0.0, lim.max_latency_ms, optional=True, lo_exclusive=True
        )
    return _request(
        request_id,
        tenant,
        dataset,
        input_tokens,
        output_tokens_est,
        client_region,
        ts_ms,
        floor,
        latency_cap_ms,
        allow_models,
        deny_models,
        allow_regions,
        deny_regions,
    )


# Accepted override lists: (field, check rule, the list) -> the list's one shared tuple.
# Producers send the same few allow/deny lists over and over: a hit skips the checks and gives
# every request the same tuple (one object for the collector, not one per request). Only lists
# that passed are kept, and at most this many.
_ACCEPTED_LISTS: dict[tuple[Any, ...], tuple[str, ...]] = {}
_ACCEPTED_LISTS_MAX = 4096


def _name_list(d: dict[str, Any], key: str, *rule: Any) -> tuple[str, ...] | None:
    """``_fields.name_list(d, key, *rule)`` (same result or rejection), remembering the lists
    it accepted under that rule (max items, max chars, allowed names, reason if unknown)."""
    v = d.get(key)
    if type(v) is not list:
        return f.name_list(d, key, *rule)
    probe = (key, rule, tuple(v))
    try:
        hit = _ACCEPTED_LISTS.get(probe)
    except TypeError:  # an unhashable entry (array/object): rejected by name_list
        return f.name_list(d, key, *rule)
    if hit is not None:
        return hit
    out: tuple[str, ...] | None = f.name_list(d, key, *rule)
    if out is not None and len(_ACCEPTED_LISTS) < _ACCEPTED_LISTS_MAX:
        _ACCEPTED_LISTS[probe] = out
    return out


def _check_not_empty(
    what: str, allow: tuple[str, ...] | None, deny: tuple[str, ...] | None
) -> None:
    # An empty allow-list, or one the deny-list cancels entirely, can never be served.
    if allow is not None and (not allow or (deny is not None and set(allow) <= set(deny))):
        raise Bad(
            RejectReason.CONFLICTING_CONSTRAINTS,
            f"allow_{what} leaves nothing to choose from (empty or entirely denied)",
            f"allow_{what}",
            Stage.VALIDATE,
        )
