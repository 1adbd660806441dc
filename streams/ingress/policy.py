"""Raw bytes on the policy topic -> ``PolicyUpdate | Rejected`` (schema ``policy.v1``).

A policy record carries the *whole* ``PolicyConfig`` (the topic is compacted, key ``global``),
so the latest record alone re-derives every later decision. Fields the record omits take the
core's defaults; the record must at least name its ``config.version``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.core.policy_config import MODES, PolicyConfig
from streams.ingress import _fields as f
from streams.ingress._errors import Bad
from streams.ingress._run import run
from streams.ingress.context import PERMISSIVE, IngressContext
from streams.ingress.rejected import Reason, Rejected, Source

SUPPORTED_VERSIONS = frozenset({1})
SCOPES = frozenset({"global"})
_KEYS = frozenset(("schema_version", "scope", "policy_name", "issued_at_ms", "config"))
_REQUIRED = ("scope", "config")
MAX_MAP_ENTRIES = 10_000

# field -> (kind, lo, hi); kinds: num, num?, int, bool, str, mode, floors/budgets (name -> num)
CONFIG_FIELDS: dict[str, tuple[str, float, float]] = {
    "version": ("str", 1, 64),
    "mode": ("mode", 0, 0),
    "floors": ("floors", 0.0, 1.0),
    "default_floor": ("num", 0.0, 1.0),
    "adaptive_floor_alpha": ("num?", 0.0, 1.0),
    "floor_hard": ("bool", 0, 0),
    "floor_margin": ("num", 0.0, 1.0),
    "max_accuracy_loss": ("num", 0.0, 1.0),
    "use_lcb": ("bool", 0, 0),
    "lcb_z": ("num", 0.0, 10.0),
    "explore_z": ("num", 0.0, 10.0),
    "feedback_weight": ("num", 0.0, 10.0),
    "latency_slo_ms": ("num", 1e-3, 3_600_000.0),
    "slo_margin": ("num", 0.0, 0.999),
    "latency_quantile": ("num", 0.5, 0.95),
    "latency_target_ratio": ("num", 1e-3, 10.0),
    "budgets_g": ("budgets", 1e-9, 1e15),
    "default_budget_g": ("num?", 1e-9, 1e15),
    "budget_window_ms": ("int", 1, 366 * 86_400_000),
    "budget_buckets": ("int", 1, 100_000),
    "budget_hard": ("bool", 0, 0),
    "eta_lambda": ("num", 0.0, 1e6),
    "eta_mu": ("num", 0.0, 1e6),
    "eta_nu": ("num", 0.0, 1e6),
    "lambda_max": ("num", 0.0, 1e9),
    "mu_max": ("num", 0.0, 1e9),
    "nu_max": ("num", 0.0, 1e9),
    "mu_init": ("num", 0.0, 1e9),
    "mu_init_by_dataset": ("floors", 0.0, 1e9),
    "floor_targets": ("floors", 0.0, 1.0),
    "mu_warm_start": ("bool", 0, 0),
    "mu_warmup_gain": ("num", 0.0, 1e6),
    "mu_warmup_n": ("int", 0, 10**9),
    "carbon_ref_g": ("num?", 1e-12, 1e15),
    "intensity_max_age_ms": ("int", 1, 366 * 86_400_000),
    "stale_intensity_g_per_kwh": ("num", 0.0, 5_000.0),
    "eps": ("num", 0.0, 1.0),
    "seed": ("int", 0, 2**63 - 1),
}


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
            raise Bad(Reason.WRONG_TYPE, "config must be an object", "config")
        return PolicyUpdate(scope, _config(cfg, c), name, issued, offset)

    return run("policy", raw, ctx.limits.max_policy_bytes, build, ctx, source)


def _config(cfg: dict[str, Any], ctx: IngressContext) -> PolicyConfig:
    unknown = sorted(k for k in cfg if k not in CONFIG_FIELDS)
    if unknown:
        raise Bad(
            Reason.UNKNOWN_FIELD,
            f"unknown config field(s) {[f.safe_key(k) for k in unknown[:5]]}",
            f"config.{f.safe_key(unknown[0])}",
        )
    if "version" not in cfg:
        raise Bad(Reason.MISSING_FIELD, "config.version is required", "config.version")
    out: dict[str, Any] = {}
    for key in cfg:
        kind, lo, hi = CONFIG_FIELDS[key]
        out[key] = _config_value(cfg, key, kind, lo, hi, ctx)
    return PolicyConfig.from_dict(out)


def _config_value(
    cfg: dict[str, Any], key: str, kind: str, lo: float, hi: float, ctx: IngressContext
) -> Any:
    where = f"config.{key}"
    try:
        if kind == "num" or kind == "num?":
            return f.number(cfg, key, lo, hi, optional=kind == "num?")
        if kind == "int":
            return f.integer(cfg, key, int(lo), int(hi))
        if kind == "bool":
            return f.boolean(cfg, key)
        if kind == "str":
            return f.name(cfg, key, int(hi))
        if kind == "mode":
            return f.one_of(cfg, key, frozenset(MODES), optional=False)
        return _number_map(cfg, key, lo, hi, ctx)
    except Bad as bad:
        bad.field = where
        raise


def _number_map(
    cfg: dict[str, Any], key: str, lo: float, hi: float, ctx: IngressContext
) -> dict[str, float]:
    m = cfg[key]
    if type(m) is not dict:
        raise Bad(Reason.WRONG_TYPE, f"{key} must be an object of numbers", key)
    if len(m) > MAX_MAP_ENTRIES:
        raise Bad(Reason.LIST_TOO_LONG, f"{key} has {len(m)} entries, limit {MAX_MAP_ENTRIES}")
    out: dict[str, float] = {}
    for name in m:
        f.check_name(f"{key} key", name, ctx.limits.max_name_chars)
        out[name] = f.number(m, name, lo, hi)
    return out
