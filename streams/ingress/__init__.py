"""Edges: raw Kafka bytes -> typed core values or ``Rejected`` (errors are data, never raised).

Every ``parse_*`` takes ``(raw, ctx=PERMISSIVE, source=None)``; build ``ctx`` once with
``IngressContext.from_catalog(catalog)`` and pass ``Source(topic, partition, offset, ...)`` so a
rejection can name where it came from.
"""

from streams.ingress.completions import parse_completion
from streams.ingress.context import PERMISSIVE, IngressContext
from streams.ingress.intensity import parse_intensity, parse_intensity_many
from streams.ingress.limits import DEFAULT_LIMITS, Limits
from streams.ingress.policy import PolicyUpdate, parse_policy
from streams.ingress.rejected import Rejected, RejectReason, Source, Stage
from streams.ingress.requests import parse_request

__all__ = [
    "DEFAULT_LIMITS",
    "PERMISSIVE",
    "IngressContext",
    "Limits",
    "PolicyUpdate",
    "RejectReason",
    "Rejected",
    "Source",
    "Stage",
    "parse_completion",
    "parse_intensity",
    "parse_intensity_many",
    "parse_policy",
    "parse_request",
]
