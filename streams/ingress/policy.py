"""Raw bytes on the policy topic -> ``PolicyUpdate | Rejected`` (schema ``policy.v1``).

A policy record carries the *whole* ``PolicyConfig`` (the topic is compacted, key ``global``),
so the latest record alone re-derives every later decision. Fields the record omits take the
preset of its ``config.mode`` (``balanced`` when it names none: the product's default), so
publishing a mode switches every setting of that mode; the record must at least name its
``config.version``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.core.policy_config import PolicyConfig
from streams.ingress import _fields as f
from streams.ingress._errors import Bad
from streams.ingress._run import run
from streams.ingress.context import PERMISSIVE, IngressContext
from streams.ingress.rejected import Rejected, RejectReason, Source
from streams.ingress.schema_fields import ConfigField, allowed_keys, config_fields, required_keys

SUPPORTED_VERSIONS = frozenset({1})
SCOPES = frozenset({"global"})
_KEYS = allowed_keys("policy")
_REQUIRED = required_keys("policy")
MAX_MAP_ENTRIES = 10_000

# field -> (kind, lo, hi), from the policy schema's config object (see schema_fields).
CONFIG_FIELDS = config_fields()


@dataclass(frozen=True, slots=True)
class PolicyUpdate:
    """A validated policy record. ``source_offset`` is its Kafka offset (for audits)."""

    scope: str
    config: PolicyConfig
    policy_name: str | None = None
    issued_at_ms: int | None = None
    source_offset: int = -1


def parse_policy(
    raw: bytes | None, ctx: IngressContext = PERMISSIVE, source: Source | None = None
) -> PolicyUpdate | Rejected:
    """Parse one policy-topic message. Never raises."""
    offset = -1 if source is None else source.offset

    def build(d: dict[str, Any], c: IngressContext) -> PolicyUpdate:
        lim = c.limits
        f.check_version(d, SUPPORTED_VERSIONS)
        f.check_keys(d, _KEYS, _REQUIRED)
        scope = f.one_of(d, "scope", SCOPES, optional=False)
        name = d.get("policy_name")
        if name is not None:
            name = f.name(d, "policy_name", lim.max_name_chars)
        issued = f.integer(d, "issued_at_ms", lim.min_ts_ms, lim.max_ts_ms - 1, optional=True)
        cfg = d["config"]
        if type(cfg) is not dict:
            raise Bad(RejectReason.WRONG_TYPE, "config must be an object", "config")
        return PolicyUpdate(scope, _config(cfg, c), name, issued, offset)

    return run("policy", raw, ctx.limits.max_policy_bytes, build, ctx, source)


def _config(cfg: dict[str, Any], ctx: IngressContext) -> PolicyConfig:
    unknown = sorted(k for k in cfg if k not in CONFIG_FIELDS)
    if unknown:
        raise Bad(
            RejectReason.UNKNOWN_FIELD,
            f"unknown config field(s) {[f.safe_key(k) for k in unknown[:5]]}",
            f"config.{f.safe_key(unknown[0])}",
        )
    if "version" not in cfg:
        raise Bad(RejectReason.MISSING_FIELD, "config.version is required", "config.version")
    out: dict[str, Any] = {}
    for key in cfg:
        out[key] = _config_value(cfg, key, CONFIG_FIELDS[key], ctx)
    return PolicyConfig.from_record(out)


def _config_value(cfg: dict[str, Any], key: str, spec: ConfigField, ctx: IngressContext) -> Any:
    where = f"config.{key}"
    kind, lo, hi = spec.kind, spec.lo, spec.hi
    try:
        if kind == "num" or kind == "num?":
            return f.number(cfg, key, lo, hi, optional=kind == "num?")
        if kind == "int":
            return f.integer(cfg, key, int(lo), int(hi))
        if kind == "bool":
            return f.boolean(cfg, key)
        if kind == "str":
            return f.name(cfg, key, int(hi))
        if kind == "choice":
            return f.one_of(cfg, key, spec.choices, optional=False)
        if kind == "objects":
            return _object_map(cfg, key, spec, ctx)
        return _number_map(cfg, key, lo, hi, ctx)
    except Bad as bad:
        bad.field = where
        raise


def _object_map(
    cfg: dict[str, Any], key: str, spec: ConfigField, ctx: IngressContext
) -> dict[str, dict[str, Any]]:
    """``tenant_overrides``: name -> an object checked field by field like the config."""
    m = cfg[key]
    if type(m) is not dict:
        raise Bad(RejectReason.WRONG_TYPE, f"{key} must be an object of objects", key)
    if len(m) > MAX_MAP_ENTRIES:
        raise Bad(
            RejectReason.LIST_TOO_LONG, f"{key} has {len(m)} entries, limit {MAX_MAP_ENTRIES}"
        )
    fields = dict(spec.fields)
    out: dict[str, dict[str, Any]] = {}
    for name, value in m.items():
        f.check_name(f"{key} key", name, ctx.limits.max_name_chars)
        where = f"{key}.{f.safe_key(name)}"
        if type(value) is not dict:
            raise Bad(RejectReason.WRONG_TYPE, f"{where} must be an object", where)
        unknown = sorted(k for k in value if k not in fields)
        if unknown:
            raise Bad(
                RejectReason.UNKNOWN_FIELD,
                f"unknown field(s) {[f.safe_key(k) for k in unknown[:5]]} in {where}",
                f"{where}.{f.safe_key(unknown[0])}",
            )
        for req in spec.required:
            if req not in value:
                raise Bad(RejectReason.MISSING_FIELD, f"{where}.{req} is required", where)
        entry: dict[str, Any] = {}
        for sub in value:
            try:
                entry[sub] = _config_value(value, sub, fields[sub], ctx)
            except Bad as bad:
                bad.field = f"config.{where}.{sub}"
                raise
        out[name] = entry
    return out


def _number_map(
    cfg: dict[str, Any], key: str, lo: float, hi: float, ctx: IngressContext
) -> dict[str, float]:
    m = cfg[key]
    if type(m) is not dict:
        raise Bad(RejectReason.WRONG_TYPE, f"{key} must be an object of numbers", key)
    if len(m) > MAX_MAP_ENTRIES:
        raise Bad(
            RejectReason.LIST_TOO_LONG, f"{key} has {len(m)} entries, limit {MAX_MAP_ENTRIES}"
        )
    out: dict[str, float] = {}
    for name in m:
        f.check_name(f"{key} key", name, ctx.limits.max_name_chars)
        out[name] = f.number(m, name, lo, hi)
    return out
