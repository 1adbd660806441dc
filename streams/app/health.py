"""Liveness (``/healthz``) and readiness (``/readyz``) on Faust's own web server.

Both answer JSON, 200 when the check passes and 503 when it does not, so any HTTP probe (a
Kubernetes ``httpGet``, a compose healthcheck through ``gar probe``) needs nothing else.

- Live: the event loop answers (the server runs in the worker's loop, so a loop held by a batch
  or a collection times the probe out) and the Faust app has neither crashed nor begun stopping.
- Ready: live, a rebalance has completed since the last revoke (partitions assigned and their
  tables recovered; a worker with no requests partition, one more than the partitions, is ready
  as a standby), and the control topics are caught up: every policy and carbon-intensity record
  published before the start is applied (``ControlGate``). A gate that opened on its timeout
  leaves the worker routing on what it loaded, and unready, so a rollout stops there.

With ``worker.web_port = 0`` the server binds any free port (streams/app/web.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust

from streams.app.control_gate import ControlGate
from streams.app.direct import DirectRequests

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    body: dict[str, Any]

    @property
    def status(self) -> int:
        return 200 if self.ok else 503


class WorkerHealth:
    """Answers the probes from the worker's own state; the rebalance hooks keep it current."""

    def __init__(
        self,
        faust_app: Any,
        control: ControlGate,
        requests_topic: str,
        direct: DirectRequests | None,
    ) -> None:
        self._app = faust_app
        self._control = control
        self._requests_topic = requests_topic
        self._direct = direct
        self._assigned = False  # a rebalance completed since the last revoke
        self.rebalances = 0

    def on_assigned(self) -> None:
        self._assigned = True
        self.rebalances += 1

    def on_revoked(self) -> None:
        self._assigned = False

    def liveness(self) -> ProbeResult:
        crashed = bool(self._app.crashed)
        stopping = bool(self._app.should_stop)
        return ProbeResult(
            not crashed and not stopping, {"live": not crashed and not stopping, "crashed": crashed}
        )

    def readiness(self) -> ProbeResult:
        live = self.liveness().ok
        assigned = self._assigned and not self._app.rebalancing
        control = self._control
        caught_up = control.is_open and not control.behind
        ready = live and assigned and caught_up
        body = {
            "ready": ready,
            "live": live,
            "assigned": assigned,
            "rebalances": self.rebalances,
            "requests_partitions": self._requests_partitions(),
            "control": {
                "checked": control.is_open,
                "caught_up": caught_up,
                "waited_s": round(control.waited_s, 3),
                "behind": dict(control.behind),
            },
        }
        return ProbeResult(ready, body)

    def _requests_partitions(self) -> list[int]:
        if self._direct is not None:
            return sorted(self._direct.assigned)
        if not self._assigned:
            return []
        return sorted(
            tp.partition
            for tp in self._app.consumer.assignment()
            if tp.topic == self._requests_topic
        )


def register_health(app: faust.App, health: WorkerHealth) -> None:
    """The two pages and the rebalance hooks on the Faust app."""

    @app.page("/healthz")
    async def healthz(view: Any, request: Any) -> Any:
        result = health.liveness()
        return view.json(result.body, status=result.status)

    @app.page("/readyz")
    async def readyz(view: Any, request: Any) -> Any:
        result = health.readiness()
        return view.json(result.body, status=result.status)

    @app.on_rebalance_complete.connect  # type: ignore[misc,arg-type]
    async def assigned(sender: Any, **kwargs: Any) -> None:
        health.on_assigned()

    @app.on_partitions_revoked.connect  # type: ignore[misc,arg-type]
    async def revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        health.on_revoked()

    _ = (healthz, readyz, assigned, revoked)
