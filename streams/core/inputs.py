"""Typed inputs of the core: a routing ``Request`` and a ``Completion`` (telemetry).

Both validate their numbers on construction and raise ``RequestError`` / ``TelemetryError``
(typed, never a crash deeper in the math). Checks that need the catalog (unknown model or
region names in the overrides) live in ``RoutingContext.validate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from streams.core.errors import RequestError, TelemetryError


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite_nonneg(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


@dataclass(frozen=True, slots=True)
class Request:
    """One LLM request to route. ``ts_ms`` is the producer's event time (ms since epoch).

    Overrides (all optional): ``floor`` (own accuracy floor in [0, 1]), ``latency_cap_ms``
    (own p95 cap, replaces the SLO), allow/deny lists of model and region names.
    """

    request_id: str
    tenant: str
    dataset: str
    input_tokens: int
    output_tokens_est: int | None
    client_region: str
    ts_ms: int
    floor: float | None = None
    latency_cap_ms: float | None = None
    allow_models: tuple[str, ...] | None = None
    deny_models: tuple[str, ...] | None = None
    allow_regions: tuple[str, ...] | None = None
    deny_regions: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        rid = self.request_id if isinstance(self.request_id, str) else None
        if not rid:
            raise RequestError("request_id must be a non-empty string")
        if not isinstance(self.tenant, str) or not self.tenant:
            raise RequestError("tenant must be a non-empty string", rid)
        if not isinstance(self.dataset, str):
            raise RequestError("dataset must be a string", rid)
        if not isinstance(self.client_region, str):
            raise RequestError("client_region must be a string", rid)
        if not _is_int(self.input_tokens) or self.input_tokens < 0:
            raise RequestError("input_tokens must be an integer >= 0", rid)
        if self.output_tokens_est is not None and (
            not _is_int(self.output_tokens_est) or self.output_tokens_est < 0
        ):
            raise RequestError("output_tokens_est must be an integer >= 0 or null", rid)
        if not _is_int(self.ts_ms) or self.ts_ms < 0:
            raise RequestError("ts_ms must be an integer >= 0", rid)
        if self.floor is not None and not (_finite_nonneg(self.floor) and self.floor <= 1.0):
            raise RequestError("floor must be a number in [0, 1]", rid)
        if self.latency_cap_ms is not None and not (
            _finite_nonneg(self.latency_cap_ms) and self.latency_cap_ms > 0
        ):
            raise RequestError("latency_cap_ms must be a finite number > 0", rid)
        for name in ("allow_models", "deny_models", "allow_regions", "deny_regions"):
            v = getattr(self, name)
            if v is not None and (
                not isinstance(v, tuple) or not all(isinstance(x, str) for x in v)
            ):
                raise RequestError(f"{name} must be a tuple of strings", rid)

    @property
    def has_overrides(self) -> bool:
        return not (
            self.allow_models is None
            and self.deny_models is None
            and self.allow_regions is None
            and self.deny_regions is None
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "request_id": self.request_id,
            "tenant": self.tenant,
            "dataset": self.dataset,
            "input_tokens": self.input_tokens,
            "output_tokens_est": self.output_tokens_est,
            "client_region": self.client_region,
            "ts_ms": self.ts_ms,
        }
        for name in ("floor", "latency_cap_ms"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        for name in ("allow_models", "deny_models", "allow_regions", "deny_regions"):
            v = getattr(self, name)
            if v is not None:
                d[name] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Request:
        """Build from a decoded dict (lists become tuples). Raises ``RequestError``."""
        if not isinstance(d, dict):
            raise RequestError("request must be a JSON object")
        try:
            kw = {
                k: d[k]
                for k in (
                    "request_id",
                    "tenant",
                    "dataset",
                    "input_tokens",
                    "client_region",
                    "ts_ms",
                )
            }
        except KeyError as e:
            raise RequestError(f"missing field {e.args[0]}", d.get("request_id")) from None
        kw["output_tokens_est"] = d.get("output_tokens_est")
        for name in ("floor", "latency_cap_ms"):
            if d.get(name) is not None:
                kw[name] = d[name]
        for name in ("allow_models", "deny_models", "allow_regions", "deny_regions"):
            v = d.get(name)
            if v is not None:
                kw[name] = tuple(v) if isinstance(v, list | tuple) else v
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class Completion:
    """Telemetry for one served request.

    ``latency_ms`` is the serving latency measured at the region (queue + prefill + decode),
    without the client network; the core adds the catalog RTT for the client region.
    ``energy_j`` is measured energy if the fleet reports it; ``correct`` is correctness
    feedback (1/0) if known.
    """

    request_id: str
    tenant: str
    model: str
    region: str
    dataset: str
    ts_ms: int
    latency_ms: float
    input_tokens: int
    output_tokens: int
    energy_j: float | None = None
    correct: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.request_id, str) or not self.request_id:
            raise TelemetryError("request_id must be a non-empty string")
        for name in ("tenant", "model", "region", "dataset"):
            if not isinstance(getattr(self, name), str):
                raise TelemetryError(f"{name} must be a string")
        if not _is_int(self.ts_ms) or self.ts_ms < 0:
            raise TelemetryError("ts_ms must be an integer >= 0")
        if not _finite_nonneg(self.latency_ms):
            raise TelemetryError("latency_ms must be a finite number >= 0")
        for name in ("input_tokens", "output_tokens"):
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                raise TelemetryError(f"{name} must be an integer >= 0")
        if self.energy_j is not None and not _finite_nonneg(self.energy_j):
            raise TelemetryError("energy_j must be a finite number >= 0 or null")
        if self.correct is not None and not isinstance(self.correct, bool):
            raise TelemetryError("correct must be a bool or null")

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "tenant": self.tenant,
            "model": self.model,
            "region": self.region,
            "dataset": self.dataset,
            "ts_ms": self.ts_ms,
            "latency_ms": self.latency_ms,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "energy_j": self.energy_j,
            "correct": self.correct,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Completion:
        """Build from a decoded dict; ``correct`` may be 0/1. Raises ``TelemetryError``."""
        if not isinstance(d, dict):
            raise TelemetryError("completion must be a JSON object")
        correct = d.get("correct")
        if type(correct) is int and correct in (0, 1):
            correct = bool(correct)
        try:
            return cls(
                request_id=d["request_id"],
                tenant=d["tenant"],
                model=d["model"],
                region=d["region"],
                dataset=d["dataset"],
                ts_ms=d["ts_ms"],
                latency_ms=d["latency_ms"],
                input_tokens=d["input_tokens"],
                output_tokens=d["output_tokens"],
                energy_j=d.get("energy_j"),
                correct=correct,
            )
        except KeyError as e:
            raise TelemetryError(f"missing field {e.args[0]}") from None
