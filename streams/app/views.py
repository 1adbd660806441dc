"""Replicated read views (intensity, policy, estimators) and the RoutingContext built from them.

The three GlobalTables are filled by Faust's changelog readers in the background; this module
notices a change by object identity of the raw stored bytes (every applied changelog record is a
new ``bytes`` object), rebuilds only the part that changed, and rebuilds the (immutable)
``RoutingContext`` at most once per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

import orjson

from streams.app.checkpoint import compact
from streams.core.catalog import Catalog
from streams.core.context import RoutingContext
from streams.core.errors import CoreError
from streams.core.estimators import EstimatorState
from streams.core.intensity import IntensityReading, IntensityView
from streams.core.policy_config import PolicyConfig

GLOBAL_SCOPE = b"global"
log = logging.getLogger(__name__)


def zone_history_bytes(history: tuple[IntensityReading, ...]) -> bytes:
    return compact(orjson.dumps([r.to_dict() for r in history]))


def _changed(seen: dict[bytes, bytes], store: Mapping[bytes, bytes]) -> bool:
    if len(seen) != len(store):
        return True
    return any(seen.get(k) is not v for k, v in store.items())


class Views:
    """What every decision is priced with, kept current from the GlobalTables."""

    def __init__(
        self,
        catalog: Catalog,
        default_policy: PolicyConfig,
        default_policy_name: str,
        intensity_store: MutableMapping[bytes, bytes],
        policy_store: MutableMapping[bytes, bytes],
        estimator_store: MutableMapping[bytes, bytes],
    ) -> None:
        self.catalog = catalog
        self._default_policy = default_policy
        self._default_policy_name = default_policy_name
        self.intensity_store = intensity_store
        self.policy_store = policy_store
        self.estimator_store = estimator_store
        self._seen_intensity: dict[bytes, bytes] = {}
        self._seen_policy: dict[bytes, bytes] = {}
        self._seen_estimators: dict[bytes, bytes] = {}
        self.intensity = IntensityView()
        self.policy = default_policy
        self.policy_name = default_policy_name
        self.policy_offset = -1
        # Live per-partition estimator state owned by this worker (completions partitions).
        self.local_estimators: dict[int, EstimatorState] = {}
        self._local_dirty = True
        self._ctx: RoutingContext | None = None
        self._bad_snapshots: set[bytes] = set()

    # --- intensity ---------------------------------------------------------------------------
    def zone_history(self, zone: str) -> tuple[IntensityReading, ...]:
        raw = self.intensity_store.get(zone.encode())
        if raw is None:
            return ()
        return tuple(IntensityReading.from_dict(d) for d in orjson.loads(raw))

    def _refresh_intensity(self) -> bool:
        if not _changed(self._seen_intensity, self.intensity_store):
            return False
        latest: dict[str, IntensityReading] = {}
        history: dict[str, tuple[IntensityReading, ...]] = {}
        for key, raw in list(self.intensity_store.items()):
            try:
                hist = tuple(IntensityReading.from_dict(d) for d in orjson.loads(raw))
            except (CoreError, ValueError, KeyError, TypeError) as exc:
                log.error("stored intensity for %r unusable, ignored: %s", key, exc)
                continue
            if hist:
                zone = key.decode()
                history[zone] = hist
                latest[zone] = max(hist, key=lambda r: r.ts_ms)
        self.intensity = IntensityView(latest, history)
        self._seen_intensity = dict(self.intensity_store)
        return True

    # --- policy ------------------------------------------------------------------------------
    def _refresh_policy(self) -> bool:
        if not _changed(self._seen_policy, self.policy_store):
            return False
        raw = self.policy_store.get(GLOBAL_SCOPE)
        if raw is not None:
            try:
                d = orjson.loads(raw)
                policy = PolicyConfig.from_record(d["config"])
            except (CoreError, ValueError, KeyError, TypeError) as exc:
                # Only the policy agent writes here (after validating); keep routing with the
                # previous policy rather than stop.
                log.error(
                    "stored policy unusable, keeping version %s: %s", self.policy.version, exc
                )
            else:
                self.policy = policy
                self.policy_name = d.get("policy_name") or self._default_policy_name
                self.policy_offset = int(d.get("source_offset", -1))
        self._seen_policy = dict(self.policy_store)
        return True

    # --- estimators --------------------------------------------------------------------------
    def estimator_for(self, partition: int) -> EstimatorState:
        """This worker's live state for a completions partition (seeded from its snapshot)."""
        est = self.local_estimators.get(partition)
        if est is None:
            key = b"p%d" % partition
            raw = self.estimator_store.get(key)
            seeded = None if raw is None else self._snapshot_state(key, raw)
            est = seeded if seeded is not None else EstimatorState(self.catalog)
            self.local_estimators[partition] = est
        return est

    def mark_estimators_dirty(self) -> None:
        self._local_dirty = True

    def drop_local(self) -> None:
        """After a rebalance: partitions may have moved; reseed from the snapshots."""
        self.local_estimators.clear()
        self._local_dirty = True
        self._ctx = None

    def _snapshot_state(self, key: bytes, raw: bytes) -> EstimatorState | None:
        """A published snapshot, or None if it cannot be used (e.g. written by a worker on an
        older catalog version): skipped, never fatal."""
        try:
            return EstimatorState.from_dict(self.catalog, orjson.loads(raw))
        except (CoreError, ValueError, KeyError, TypeError) as exc:
            if key not in self._bad_snapshots:
                log.error("estimator snapshot %r unusable, ignored: %s", key, exc)
                self._bad_snapshots.add(key)
            return None

    def _merged_estimators(self) -> EstimatorState:
        merged = EstimatorState(self.catalog)
        for key, raw in list(self.estimator_store.items()):
            partition = int(key[1:])
            if partition not in self.local_estimators:
                est = self._snapshot_state(key, raw)
                if est is not None:
                    merged = merged.merge(est)
        for est in self.local_estimators.values():
            merged = merged.merge(est)
        return merged

    # --- context -----------------------------------------------------------------------------
    def context(self, *, refresh_estimators: bool) -> RoutingContext:
        """The context for the next batch. Estimator merges are the costly part, so the caller
        asks for them on a timer (``refresh_estimators``)."""
        changed = self._refresh_intensity() | self._refresh_policy()
        est_changed = refresh_estimators and (
            self._local_dirty or _changed(self._seen_estimators, self.estimator_store)
        )
        if self._ctx is None or changed or est_changed:
            estimators = self._merged_estimators() if (est_changed or self._ctx is None) else None
            if estimators is not None:
                self._seen_estimators = dict(self.estimator_store)
                self._local_dirty = False
                snap: Any = estimators.snapshot(self.policy.lcb_z)
            else:
                assert self._ctx is not None
                snap = self._ctx.snapshot
            self._ctx = RoutingContext.build(self.catalog, self.policy, snap, self.intensity)
        return self._ctx
