"""Views: unusable replicated state is skipped, never fatal."""

from __future__ import annotations

import orjson
from support.worker import SMALL_CATALOG

from streams.core.catalog import Catalog
from streams.core.policy_config import PolicyConfig

T0_MS = 1_672_531_200_000


def test_views_skip_unusable_replicated_state_instead_of_crashing() -> None:
    from streams.app.views import GLOBAL_SCOPE, Views
    from streams.core.estimators import EstimatorState

    catalog = Catalog.from_dict(SMALL_CATALOG)
    other = Catalog.from_dict(
        {**SMALL_CATALOG, "version": "older.1", "models": SMALL_CATALOG["models"][:1]}
    )
    old = EstimatorState(other)
    intensity = {
        b"GB": b"not json",
        b"US-MIDA-PJM": orjson.dumps(
            [{"zone": "US-MIDA-PJM", "intensity_g_per_kwh": 400.0, "ts_ms": T0_MS}]
        ),
    }
    policy = {GLOBAL_SCOPE: orjson.dumps({"config": {"mode": "nonsense"}})}
    estimators = {b"p0": orjson.dumps(old.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)}
    views = Views(catalog, PolicyConfig(version="default"), "gar-pd", intensity, policy, estimators)
    ctx = views.context(refresh_estimators=True)
    assert ctx.config.version == "default"
    assert views.intensity.zones == ("US-MIDA-PJM",)
    assert ctx.snapshot.seq == 0
    assert views.estimator_for(0).catalog is catalog  # fresh, not the incompatible snapshot
