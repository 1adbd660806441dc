"""What /healthz and /readyz answer in each worker state, with a fake Faust app and gate (the
real pages are asked of real workers in tests/integration/test_worker_health.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.app.health import WorkerHealth
from streams.app.probe import probe_url, web_port_path
from streams.config import Settings


@dataclass(frozen=True)
class _TP:
    topic: str
    partition: int


@dataclass
class _Consumer:
    tps: list[_TP] = field(default_factory=list)

    def assignment(self) -> set[_TP]:
        return set(self.tps)


@dataclass(eq=False)
class _App:
    crashed: bool = False
    should_stop: bool = False
    rebalancing: bool = False
    consumer: Any = None


@dataclass
class _Gate:
    is_open: bool = False
    waited_s: float = 0.0
    behind: dict[str, int] = field(default_factory=dict)


def _health(app: _App, gate: _Gate) -> WorkerHealth:
    return WorkerHealth(app, gate, "gar.requests", None)  # type: ignore[arg-type]


def test_not_ready_until_assigned_and_control_caught_up() -> None:
    app = _App(consumer=_Consumer([_TP("gar.requests", 1), _TP("gar.policy", 0)]))
    gate = _Gate()
    health = _health(app, gate)
    assert health.liveness().ok and health.liveness().status == 200
    first = health.readiness()
    assert not first.ok and first.status == 503
    assert first.body["assigned"] is False and first.body["requests_partitions"] == []

    health.on_assigned()
    waiting = health.readiness()
    assert not waiting.ok and waiting.body["control"] == {
        "checked": False,
        "caught_up": False,
        "waited_s": 0.0,
        "behind": {},
    }

    gate.is_open, gate.waited_s = True, 0.42
    ready = health.readiness()
    assert ready.ok and ready.body["requests_partitions"] == [1]
    assert ready.body["control"]["caught_up"] and ready.body["rebalances"] == 1


def test_a_gate_opened_on_timeout_leaves_the_worker_unready() -> None:
    gate = _Gate(is_open=True, behind={"gar.policy:0": 3})
    health = _health(_App(consumer=_Consumer()), gate)
    health.on_assigned()
    result = health.readiness()
    assert not result.ok and result.body["control"]["behind"] == {"gar.policy:0": 3}


def test_rebalancing_and_revoked_are_unready_crashed_is_not_live() -> None:
    app = _App(consumer=_Consumer())
    health = _health(app, _Gate(is_open=True))
    health.on_assigned()
    assert health.readiness().ok
    app.rebalancing = True
    assert not health.readiness().ok
    app.rebalancing = False
    health.on_revoked()
    assert not health.readiness().ok
    health.on_assigned()
    assert health.readiness().ok and health.readiness().body["rebalances"] == 2
    app.should_stop = True
    assert not health.liveness().ok and not health.readiness().ok
    app.should_stop, app.crashed = False, True
    live = health.liveness()
    assert not live.ok and live.status == 503 and live.body == {"live": False, "crashed": True}


def test_probe_url_from_settings_or_the_published_port(tmp_path: Any) -> None:
    fixed = Settings(worker={"web_port": 7001, "web_bind": "0.0.0.0"})
    assert probe_url(fixed, "live") == "http://127.0.0.1:7001/healthz"
    any_port = Settings(app_id="x", worker={"web_port": 0, "data_dir": str(tmp_path)})
    assert probe_url(any_port, "ready") is None  # the worker has not published its port yet
    web_port_path(any_port).write_text("40123\n")
    assert probe_url(any_port, "ready") == "http://127.0.0.1:40123/readyz"
    no_dir = Settings(app_id="gar-x", worker={"web_port": 0})
    assert web_port_path(no_dir) == no_dir.dev.state_dir / "faust" / "gar-x" / "web-port"
