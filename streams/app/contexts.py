"""Write each routing context to the ``contexts`` topic before any decision that references it.

decisions.v2 records carry the digest of the context they were decided in instead of every
candidate's estimates (``streams.core.record_v2``). ``ContextPublisher.current`` is asked once
per batch: a context the worker has not written yet (a new ``RoutingContext`` object after a
policy, intensity or estimator change, or the same one for ``context_republish_s``) is sent at
once; the batch's decisions flush awaits that send's acknowledgement inside the decisions order
lock (``BatchSink.flush(after=...)``), so no decision can be on the log before its context.
Identical contexts have identical digests: re-sending one is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from streams.app.sink import BatchSink
from streams.core.catalog import Catalog
from streams.core.context import RoutingContext
from streams.core.context_inputs import ContextInputs
from streams.schema.contexts import catalog_digest, context_bytes

log = logging.getLogger(__name__)


class ContextPublisher:
    def __init__(
        self,
        catalog: Catalog,
        topic: str,
        sink: Callable[[], Awaitable[BatchSink]],
        republish_s: float,
    ) -> None:
        self._catalog_digest = catalog_digest(catalog)
        self._topic = topic
        self._sink = sink
        self._republish_s = republish_s
        self._ctx: RoutingContext | None = None
        self._policy: tuple[str, int] = ("", -1)
        self._digest = ""
        self._sent_s = float("-inf")
        self._pending: asyncio.Future[None] | None = None
        self.published = 0

    def current(
        self, ctx: RoutingContext, policy_name: str, policy_offset: int, now_s: float
    ) -> tuple[str, asyncio.Future[None] | None]:
        """(digest of ``ctx``'s record, the send to await before decisions referencing it, or
        None when it is acknowledged already)."""
        policy = (policy_name, policy_offset)
        stale = now_s - self._sent_s >= self._republish_s
        if ctx is not self._ctx or policy != self._policy or stale or not self._digest:
            digest, value = context_bytes(
                ContextInputs.of(ctx, policy_name, policy_offset), self._catalog_digest
            )
            if digest != self._digest or stale:
                self._pending = asyncio.ensure_future(self._send(digest, value))
                self._sent_s = now_s
            self._ctx, self._policy, self._digest = ctx, policy, digest
        pending = self._pending
        if pending is not None and pending.done() and pending.exception() is None:
            self._pending = pending = None
        return self._digest, pending

    async def _send(self, digest: str, value: bytes) -> None:
        try:
            sink = await self._sink()
            sink.add(self._topic, digest.encode(), value, partition=0)
            await sink.flush()
        except Exception:
            # Written again for the next batch; the decisions awaiting this send fail.
            self._digest = ""
            raise
        self.published += 1
        log.debug("context %s written (%d bytes)", digest, len(value))
