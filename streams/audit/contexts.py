"""The routing contexts decisions.v2 records reference, read back from the ``contexts`` topic.

A context record is trusted only when its bytes hash to its key (the digest decisions name) and
it was built on the catalog the audit uses (same digest, not only the same version label). Each
is rebuilt into a ``RoutingContext`` once, when a decision first needs it. A decision whose
context is missing, unusable or on another catalog is reported at its own offset.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.audit.reader import DecisionRow, ReadRange, read_decisions
from streams.config import Settings
from streams.core.catalog import Catalog
from streams.core.context import RoutingContext
from streams.core.context_inputs import ContextInputs
from streams.core.errors import CoreError
from streams.schema.contexts import ContextRecordError, catalog_digest, parse_context

# Contexts are written before the decisions that use them, and again when unchanged for
# worker.context_republish_s: read back from that long (plus this) before the first decision.
ARRIVAL_SLACK_MS = 300_000


@dataclass
class ContextIndex:
    catalog: Catalog
    inputs: dict[str, ContextInputs] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)
    """Key -> why its record is unusable (bytes that do not hash to the key, a record that does
    not parse, another catalog). A good copy of the same key wins."""
    records: int = 0
    _built: dict[str, RoutingContext] = field(default_factory=dict, repr=False)

    @classmethod
    def from_rows(cls, catalog: Catalog, rows: Iterable[DecisionRow]) -> ContextIndex:
        index = cls(catalog)
        want = catalog_digest(catalog)
        for row in rows:
            index.records += 1
            key = None if row.key is None else row.key.encode()
            try:
                digest, cat_digest, inputs = parse_context(key, row.raw)
            except ContextRecordError as e:
                index.bad.setdefault(row.key or f"@{row.offset}", f"{row.where}: {e}")
                continue
            if cat_digest != want:
                index.bad.setdefault(
                    digest,
                    f"{row.where}: built on catalog {inputs.catalog_version} ({cat_digest}), "
                    f"the audit's is {catalog.version} ({want})",
                )
                continue
            index.inputs[digest] = inputs
        for digest in index.inputs:
            index.bad.pop(digest, None)
        return index

    def context(self, digest: str) -> RoutingContext:
        """The context with this digest; raises ``LookupError`` saying why there is none."""
        ctx = self._built.get(digest)
        if ctx is not None:
            return ctx
        inputs = self.inputs.get(digest)
        if inputs is None:
            why = self.bad.get(digest)
            raise LookupError(why or f"no record with key {digest} on the contexts topic")
        try:
            ctx = self._built[digest] = inputs.build(self.catalog)
        except CoreError as e:
            raise LookupError(f"context {digest} cannot be rebuilt: {e}") from e
        return ctx

    def policy_of(self, digest: str) -> str | None:
        inputs = self.inputs.get(digest)
        return None if inputs is None else inputs.policy_name


def read_contexts(
    settings: Settings, decisions: list[DecisionRow], idle_ms: int = 1_000
) -> list[DecisionRow]:
    """The context records the v2 decisions in ``decisions`` can reference: those that arrived
    from the republish interval before the first of them on (all of them without any)."""
    stamps = [r.timestamp_ms for r in decisions if r.record and r.record.get("context")]
    if not stamps:
        return []
    lookback_ms = int(settings.worker.context_republish_s * 1000) + ARRIVAL_SLACK_MS
    since = max(min(stamps) - lookback_ms, 0)
    topic = settings.topics.name(settings.topics.contexts)
    try:
        return read_decisions(
            settings, ReadRange(since_arrival_ms=since), topic=topic, idle_ms=idle_ms
        )
    except LookupError:
        return []
