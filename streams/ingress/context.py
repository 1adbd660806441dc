"""What the parsers check names against: catalog models/regions/zones and optional known sets.

Built once at start-up (``IngressContext.from_catalog``) and passed to every parse call.
Unknown datasets and client regions are accepted by default because the core has documented
fallbacks for them (the ``"*"`` prior row, the worst-case RTT row); set ``strict_datasets`` /
``strict_client_regions`` to reject them instead. ``tenants`` (when given) is an allow-list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.core.catalog import ANY_DATASET, Catalog
from streams.ingress.limits import DEFAULT_LIMITS, Limits


@dataclass(frozen=True, slots=True)
class IngressContext:
    models: frozenset[str] | None = None
    regions: frozenset[str] | None = None
    zones: frozenset[str] | None = None
    datasets: frozenset[str] | None = None
    client_regions: frozenset[str] | None = None
    tenants: frozenset[str] | None = None
    limits: Limits = field(default_factory=lambda: DEFAULT_LIMITS)

    @classmethod
    def from_catalog(
        cls,
        catalog: Catalog,
        *,
        limits: Limits = DEFAULT_LIMITS,
        tenants: Iterable[str] | None = None,
        strict_datasets: bool = False,
        strict_client_regions: bool = False,
        strict_zones: bool = False,
    ) -> IngressContext:
        return cls(
            models=frozenset(catalog.model_names),
            regions=frozenset(catalog.region_names),
            zones=frozenset(catalog.zones) if strict_zones else None,
            datasets=(
                frozenset(d for d in catalog.datasets if d != ANY_DATASET)
                if strict_datasets
                else None
            ),
            client_regions=frozenset(catalog.client_regions) if strict_client_regions else None,
            tenants=None if tenants is None else frozenset(tenants),
            limits=limits,
        )


PERMISSIVE = IngressContext()
"""No name checks beyond format and limits (for tools and tests without a catalog)."""
