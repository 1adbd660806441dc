"""Typed errors of the routing core. Every bad input raises one of these (never a bare crash)."""

from __future__ import annotations


class CoreError(ValueError):
    """Base class of every error raised by ``streams.core``."""


class CatalogError(CoreError):
    """The catalog file is malformed, inconsistent or references unknown entries."""


class RequestError(CoreError):
    """A request is invalid (bad numbers, unknown model/region in an override, no candidate)."""

    def __init__(self, reason: str, request_id: str | None = None) -> None:
        super().__init__(f"{reason} (request_id={request_id})" if request_id else reason)
        self.reason = reason
        self.request_id = request_id


class TelemetryError(CoreError):
    """A completion record is invalid (negative latency, NaN energy, unknown model/region)."""


class IntensityError(CoreError):
    """An intensity reading is invalid (NaN or negative intensity, empty zone)."""


class PolicyConfigError(CoreError):
    """A policy configuration is out of range or names an unknown mode/policy."""


class StateError(CoreError):
    """Serialised state (estimators, tenant state) cannot be decoded."""


GarError = CoreError
"""Alias of ``CoreError`` (the app catches this name)."""
