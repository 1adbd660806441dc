"""PolicyHandler without a broker: a valid policy becomes the replicated policy entry (and its
changelog record); an unknown policy name or a bad message is one dead letter."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from support.fake_producer import FakeProducer
from support.handlers import DEAD_LETTER_TOPIC, NOW_MS, SideInputWorld, message

from streams.app.pipeline import PolicyCache
from streams.app.policy_handler import PolicyHandler
from streams.app.sink import BatchSink
from streams.app.views import GLOBAL_SCOPE

CHANGELOG = "t.policy-changelog"


def policy(version: str, name: str | None = None, **config: Any) -> bytes:
    record: dict[str, Any] = {
        "schema_version": 1,
        "scope": "global",
        "config": {"version": version, **config},
    }
    if name is not None:
        record["policy_name"] = name
    return orjson.dumps(record)


def run(world: SideInputWorld, values: list[bytes | None]) -> FakeProducer:
    handler = PolicyHandler(
        world.ingress,
        world.policy_store,
        CHANGELOG,
        "gar-pd",
        PolicyCache(),
        world.dead_letters,
        world.counters,
        wall_ms=lambda: NOW_MS,
    )
    prod = FakeProducer()
    sink = BatchSink(prod)
    handler.handle([message("t.policy", v, i) for i, v in enumerate(values)], sink)
    asyncio.run(sink.flush())
    return prod


def test_the_newest_valid_policy_is_stored_with_its_name_and_offset() -> None:
    world = SideInputWorld()
    prod = run(world, [policy("v1"), policy("v2", "carbon-greedy", latency_slo_ms=9000.0)])
    stored = orjson.loads(world.policy_store[GLOBAL_SCOPE])
    assert stored["policy_name"] == "carbon-greedy" and stored["source_offset"] == 1
    assert stored["config"]["version"] == "v2" and stored["config"]["latency_slo_ms"] == 9000.0
    assert [v for _, _, v in prod.records(CHANGELOG)][-1] == world.policy_store[GLOBAL_SCOPE]
    assert [orjson.loads(v)["policy_name"] for _, _, v in prod.records(CHANGELOG)] == [
        "gar-pd",  # no name: the worker's default policy
        "carbon-greedy",
    ]
    assert world.counters.policy_updates == 2
    # The views route with it from the next context on.
    ctx = world.views.context(refresh_estimators=False)
    assert (world.views.policy_name, ctx.config.version) == ("carbon-greedy", "v2")


def test_unknown_policy_name_and_bad_config_are_dead_lettered() -> None:
    world = SideInputWorld()
    prod = run(world, [policy("v1", "no-such-policy"), policy("v2", mode="nonsense"), None])
    dead = [orjson.loads(v) for _, _, v in prod.records(DEAD_LETTER_TOPIC)]
    first = dead[0]
    assert (first["stage"], first["reason"], first.get("field")) == (
        "validate",
        "out_of_range",
        "policy_name",
    )
    assert len(dead) == 3 and world.counters.dead_letters == 3
    assert world.policy_store == {} and prod.records(CHANGELOG) == []
