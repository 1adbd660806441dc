"""The policy side input: a validated policy (config + policy name) becomes the one entry of
the replicated policy table (and its changelog) that every worker routes with."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping

import orjson

from streams.app.checkpoint import compact
from streams.app.counters import Counters
from streams.app.dead_letters import SideInputDeadLetters
from streams.app.router import RawMessage
from streams.app.sink import BatchSink
from streams.app.views import GLOBAL_SCOPE
from streams.core.errors import CoreError
from streams.core.policies import Policy
from streams.ingress.context import IngressContext
from streams.ingress.policy import parse_policy
from streams.ingress.rejected import Rejected, RejectReason, Stage

log = logging.getLogger(__name__)


class PolicyHandler:
    def __init__(
        self,
        ingress: IngressContext,
        store: MutableMapping[bytes, bytes],
        changelog: str,
        default_policy_name: str,
        policy_for: Callable[[str], Policy],
        dead_letters: SideInputDeadLetters,
        counters: Counters,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._ingress = ingress
        self._store = store
        self._changelog = changelog
        self._default_policy_name = default_policy_name
        self._policy_for = policy_for  # raises CoreError for a name no policy is registered as
        self._dead_letters = dead_letters
        self._counters = counters
        self._wall_ms = wall_ms

    def handle(self, msgs: list[RawMessage], sink: BatchSink) -> None:
        now_ms = self._wall_ms()
        for msg in msgs:
            parsed = parse_policy(msg.value, self._ingress, msg.source)
            if isinstance(parsed, Rejected):
                self._dead_letters.write(sink, parsed, msg.key, msg.partition, now_ms)
                continue
            name = parsed.policy_name or self._default_policy_name
            try:
                self._policy_for(name)
            except CoreError as exc:
                rej = Rejected(
                    "policy",
                    Stage.VALIDATE,
                    RejectReason.OUT_OF_RANGE,
                    str(exc),
                    msg.value or b"",
                    msg.source,
                    "policy_name",
                )
                self._dead_letters.write(sink, rej, msg.key, msg.partition, now_ms)
                continue
            value = compact(
                orjson.dumps(
                    {
                        "config": parsed.config.to_dict(),
                        "policy_name": name,
                        "source_offset": parsed.source_offset,
                        "issued_at_ms": parsed.issued_at_ms,
                    }
                )
            )
            self._store[GLOBAL_SCOPE] = value
            sink.add(self._changelog, GLOBAL_SCOPE, value, partition=0)
            self._counters.policy_updates += 1
            # One line per applied policy: operators and post-mortems see which worker applied
            # which version from where (updates are rare).
            log.info(
                "policy applied: version %s (%s, mode %s) from %s",
                parsed.config.version,
                name,
                parsed.config.mode,
                f"{msg.topic}:{msg.partition}@{msg.offset}",
            )
