"""Re-derivation and counterfactual replay through the pure core (``streams.core.replay``).

The auditor needs the catalog and the policy configuration each decision was made under:
configs are indexed by ``policy_version`` (the app's default ``PolicyConfig.default()``, every
version on the policy topic, and any file the SRE passes; a record's omitted fields take its
mode's preset, as the router reads it), so a decision whose version is unknown is reported as
unverifiable rather than guessed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from streams.audit.reader import DecisionRow
from streams.audit.report import Difference
from streams.core import Catalog, PolicyConfig, RoutingContext, TenantState, get_policy
from streams.core.replay import ReplayError, priced_ahead, rederive_record


def configs_from_policy_rows(rows: Iterable[DecisionRow]) -> dict[str, PolicyConfig]:
    """Every config version published on the (compacted) policy topic; bad records skipped."""
    out: dict[str, PolicyConfig] = {}
    for row in rows:
        cfg = (row.record or {}).get("config")
        if isinstance(cfg, dict):
            try:
                pc = PolicyConfig.from_record(cfg)
            except Exception:  # a record the router would also have rejected
                continue
            out[pc.version] = pc
    return out


def resolve_config(
    configs: Mapping[str, PolicyConfig], record: Mapping[str, Any]
) -> PolicyConfig | None:
    """The config a decision was made under: its ``policy_version`` as published, or a
    published version's tenant override (``<version>+<tenant>@<override version>``)."""
    version = str(record.get("policy_version"))
    cfg = configs.get(version)
    if cfg is not None:
        return cfg
    for base in sorted(configs, key=len, reverse=True):
        if version.startswith(base + "+"):
            tenant_cfg = configs[base].for_tenant(str(record.get("tenant")))
            return tenant_cfg if tenant_cfg.version == version else None
    return None


def load_config_file(path: Path) -> PolicyConfig:
    """A PolicyConfig as JSON: either the config itself or a policy-topic record with it."""
    d = json.loads(path.read_text())
    return PolicyConfig.from_record(d.get("config", d))


def _split(text: str) -> Difference:
    """core's "path: recorded != rederived" -> (path, recorded, rederived)."""
    name, _, rest = text.partition(": ")
    recorded, sep, fresh = rest.partition(" != ")
    return (name, recorded, fresh) if sep else (name, rest, None)


@dataclass
class Rederiver:
    catalog: Catalog
    configs: Mapping[str, PolicyConfig]

    def config_for(self, record: Mapping[str, Any]) -> PolicyConfig | None:
        return resolve_config(self.configs, record)

    def __call__(self, record: dict[str, Any]) -> list[Difference]:
        cfg = self.config_for(record)
        if cfg is None:
            known = sorted(self.configs)
            return [("policy_version", record.get("policy_version"), f"unknown; have {known}")]
        ahead = priced_ahead(record)
        found = [] if ahead is None else [_split(ahead)]
        try:
            result = rederive_record(record, self.catalog, cfg)
        except ReplayError as exc:
            return [*found, ("rederive_error", None, str(exc))]
        return [*found, *(_split(m) for m in result.mismatches)]


@dataclass
class Outcome:
    decisions: int = 0
    co2_g: float = 0.0
    accuracy_sum: float = 0.0
    latency_ms_sum: float = 0.0
    floor_met: int = 0
    cap_met: int = 0

    def add(
        self, co2_g: float, accuracy: float, latency_ms: float, floor: float, cap_ms: float
    ) -> None:
        self.decisions += 1
        self.co2_g += co2_g
        self.accuracy_sum += accuracy
        self.latency_ms_sum += latency_ms
        self.floor_met += int(accuracy >= floor)
        self.cap_met += int(latency_ms <= cap_ms)

    def to_dict(self) -> dict[str, float | int]:
        n = max(self.decisions, 1)
        return {
            "decisions": self.decisions,
            "co2_g": self.co2_g,
            "co2_g_per_request": self.co2_g / n,
            "accuracy_est_mean": self.accuracy_sum / n,
            "latency_p95_ms_est_mean": self.latency_ms_sum / n,
            "floor_met_ratio": self.floor_met / n,
            "latency_cap_met_ratio": self.cap_met / n,
        }


def counterfactual(
    rows: list[DecisionRow], catalog: Catalog, configs: Mapping[str, PolicyConfig], policy: str
) -> dict[str, Any]:
    """Run ``policy`` over the same requests with the estimates recorded at decision time.

    Tenant state (duals, budget windows) is threaded through the counterfactual's own choices
    in event-time order, starting fresh, so a budget-aware policy reacts to its own spend.
    Outcomes are the recorded estimates of whichever candidate each policy picks (realised
    outcomes of candidates that were not chosen do not exist).
    """
    from streams.core.replay import _estimates  # record -> Estimates, shared with the core

    pol = get_policy(policy)
    actual, alt = Outcome(), Outcome()
    states: dict[str, TenantState] = {}
    skipped = 0
    changed = 0
    recs = sorted(
        (r.record for r in rows if r.record is not None),
        key=lambda r: (r.get("ts_ms", 0), str(r.get("tenant")), r.get("tenant_seq", 0)),
    )
    for rec in recs:
        cfg = resolve_config(configs, rec)
        if cfg is None:
            skipped += 1
            continue
        try:
            ctx = replace(
                RoutingContext.build(catalog, cfg), carbon_ref_g=float(rec["carbon_ref_g"])
            )
            est = _estimates(rec, catalog, cfg)
            new, decisions = pol.decide_estimates(ctx, states, est)
        except (ReplayError, KeyError, TypeError, ValueError, IndexError):
            skipped += 1
            continue
        states.update(new)
        d = decisions[0]
        floor, cap = float(rec["floor"]), float(rec["latency_cap_ms"])
        actual.add(
            float(rec["co2_g"]),
            float(rec["accuracy_est"]),
            float(rec["latency_p95_ms_est"]),
            floor,
            cap,
        )
        alt.add(d.co2_g, d.accuracy, d.latency_ms, floor, cap)
        changed += int(d.candidate != rec["candidate"])
    a, b = actual.to_dict(), alt.to_dict()
    return {
        "policy": policy,
        "skipped": skipped,
        "changed_choices": changed,
        "recorded": a,
        "counterfactual": b,
        "difference": {k: b[k] - a[k] for k in a if k != "decisions"},
        "co2_ratio": (alt.co2_g / actual.co2_g) if actual.co2_g else None,
    }
