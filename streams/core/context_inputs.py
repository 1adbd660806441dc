"""The inputs of a ``RoutingContext``, as a JSON-safe value: what a decisions.v2 record refers
to instead of carrying every candidate's estimates.

A context is a pure function of the catalog, the policy config, the estimator snapshot and the
intensity view (``RoutingContext.build``), and every candidate's CO2, accuracy and latency for a
request is a pure function of the context and the request's own fields
(``RoutingContext.estimate``). So the router logs the four inputs once per context (the
``contexts`` topic) and each decision logs its request's fields and the context's digest; the
audit rebuilds the context with the same function and recomputes the candidate matrix bit for
bit (floats round-trip exactly through shortest-repr JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.core.catalog import Catalog
from streams.core.context import RoutingContext
from streams.core.errors import CoreError, StateError
from streams.core.estimators import EstimatorSnapshot
from streams.core.intensity import (
    IntensityView,
    intensity_view_from_columns,
    intensity_view_to_columns,
)
from streams.core.policy_config import PolicyConfig


@dataclass(frozen=True, slots=True)
class ContextInputs:
    """Everything ``RoutingContext.build`` reads besides the catalog itself, plus the policy's
    name and the policy record it came from (what the router decides with)."""

    catalog_version: str
    policy_name: str
    policy_offset: int
    """Offset of the policy record in force on the policy topic (-1: the worker's default)."""
    config: PolicyConfig
    snapshot: EstimatorSnapshot
    intensity: IntensityView

    @classmethod
    def of(cls, ctx: RoutingContext, policy_name: str, policy_offset: int) -> ContextInputs:
        return cls(
            ctx.catalog.version, policy_name, policy_offset, ctx.config, ctx.snapshot, ctx.intensity
        )

    def build(self, catalog: Catalog) -> RoutingContext:
        """The context the router built from these inputs (raises ``StateError`` when the
        catalog is not the one it was built on)."""
        if catalog.version != self.catalog_version:
            raise StateError(
                f"context built on catalog {self.catalog_version!r}, auditing with "
                f"{catalog.version!r}"
            )
        return RoutingContext.build(catalog, self.config, self.snapshot, self.intensity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "catalog_version": self.catalog_version,
            "policy": {
                "name": self.policy_name,
                "source_offset": self.policy_offset,
                "config": self.config.to_dict(),
            },
            "estimators": self.snapshot.to_dict(),
            "intensity": intensity_view_to_columns(self.intensity),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ContextInputs:
        """Raises ``StateError`` (or another ``CoreError``) for an unusable record."""
        try:
            pol = d["policy"]
            return cls(
                catalog_version=str(d["catalog_version"]),
                policy_name=str(pol["name"]),
                policy_offset=int(pol["source_offset"]),
                config=PolicyConfig.from_dict(pol["config"]),
                snapshot=EstimatorSnapshot.from_dict(d["estimators"]),
                intensity=intensity_view_from_columns(d["intensity"]),
            )
        except CoreError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise StateError(f"bad context record: {e!r}") from e
