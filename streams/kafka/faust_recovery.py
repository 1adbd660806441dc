"""Faust's resume after recovery, with the consumer's flow stopped while streams are re-seeked.

faust-streaming's ``Recovery.on_recovery_completed`` resumes the stream partitions and seeks
them to their committed offsets while the consumer's flow is still running (recovery turned it
on to read the changelogs), and only then resumes ``app.flow_control``, which clears every
channel queue. A side-input record fetched in between is queued, cleared, and its read offset
has already moved past it: Faust does not deliver it again until the next rebalance. Seen as a
policy published while a worker took over the policy partition and still not applied 60 s
later, while that worker routed normally. Stopping the flow first (as Faust itself does when
partitions are revoked) keeps the fetcher from delivering anything until
``on_recovery_completed`` has re-seeked the streams, resumed flow control and then the consumer,
in that order. The requests hot path has its own consumer and is not affected.

The same clear empties Faust's changelog queue, which feeds every GlobalTable (the policy and
intensity each worker routes with): a changelog record still queued there would be lost for that
worker's table. With the flow stopped nothing new arrives, and the wrapper waits (at most
``CHANGELOG_DRAIN_S``) until Faust's changelog reader has taken what is queued.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from faust.tables.recovery import Recovery

_faust_on_recovery_completed: Callable[[Any, int], Awaitable[None]] = Recovery.on_recovery_completed


CHANGELOG_DRAIN_S = 2.0


async def _on_recovery_completed(self: Any, generation_id: int = 0) -> None:
    self.app.consumer.stop_flow()
    queue = self.tables.changelog_queue
    deadline = time.monotonic() + CHANGELOG_DRAIN_S
    while not queue.empty() and time.monotonic() < deadline:
        await asyncio.sleep(0.005)  # Faust's changelog reader runs between these
    await _faust_on_recovery_completed(self, generation_id)


def stop_flow_before_resuming_streams() -> None:
    """Install the ordered resume on Faust's ``Recovery`` (idempotent; process-wide, like the
    worker's one app)."""
    Recovery.on_recovery_completed = _on_recovery_completed  # type: ignore[method-assign]
