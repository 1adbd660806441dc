"""Builders for the core tests: the small synthetic catalog, intensity views, request streams."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from streams.core import (
    Catalog,
    EstimatorState,
    IntensityReading,
    IntensityView,
    PolicyConfig,
    Request,
    RoutingContext,
)

CATALOG_PATH = Path(__file__).with_name("catalog_small.json")
ZONE_G_PER_KWH = {"SE": 40.0, "US-MIDA-PJM": 400.0, "IN-WE": 700.0}


def catalog_dict() -> dict[str, Any]:
    d: dict[str, Any] = json.loads(CATALOG_PATH.read_text())
    return d


def small_catalog() -> Catalog:
    return Catalog.load(CATALOG_PATH)


def view(ts_ms: int = 0, values: dict[str, float] | None = None) -> IntensityView:
    vals = values or ZONE_G_PER_KWH
    return IntensityView.from_readings(
        IntensityReading(z, v, ts_ms, source="test", source_offset=i)
        for i, (z, v) in enumerate(sorted(vals.items()))
    )


def config(mode: str = "balanced", **kw: Any) -> PolicyConfig:
    base: dict[str, Any] = {
        "adaptive_floor_alpha": None,
        "floors": {"gsm8k": 0.85, "mbpp": 0.55},
        "latency_slo_ms": 10_000.0,
        "budget_window_ms": 60_000,
        "budget_buckets": 60,
        "intensity_max_age_ms": 10**12,
    }
    base.update(kw)
    return PolicyConfig.preset(mode, **base)  # type: ignore[arg-type]


def per_tenant_config(mode: str = "balanced", **kw: Any) -> PolicyConfig:
    """``config`` with gar-pd's accuracy duals per tenant and the ``sd`` exploration rule:
    for tests of the per-(tenant, dataset) dual mechanics (warm start, warm-up, calibrated
    start, feedback) that the pooled default would share across tenants."""
    return config(mode, **{"mu_pooled": False, "explore_rule": "sd", **kw})


def context(
    cfg: PolicyConfig | None = None,
    catalog: Catalog | None = None,
    estimators: EstimatorState | None = None,
    intensity: IntensityView | None = None,
) -> RoutingContext:
    cat = catalog or small_catalog()
    return RoutingContext.build(
        cat, cfg or config(), estimators, intensity if intensity is not None else view()
    )


def stream(
    n: int,
    *,
    seed: int = 0,
    tenant: str = "t",
    dataset: str = "gsm8k",
    client: str = "eu",
    gap_ms: int = 100,
    start_ms: int = 0,
    **overrides: Any,
) -> list[Request]:
    rng = np.random.default_rng(seed)
    return [
        Request(
            f"{tenant}-{seed}-{i}",
            tenant,
            dataset,
            int(rng.integers(100, 600)),
            None,
            client,
            start_ms + i * gap_ms,
            **overrides,
        )
        for i in range(n)
    ]
