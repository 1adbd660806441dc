"""CompletionHandler without a broker: completions reach this partition's estimator and the
metrics, graded ones fold into the tenant state of a policy that uses feedback (checkpointed
only while no routed batch is committing), and estimator snapshots are published."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from support.fake_producer import FakeProducer
from support.handlers import DEAD_LETTER_TOPIC, NOW_MS, SideInputWorld, message

from streams.app.completion_handler import CompletionHandler, EstimatorSnapshots
from streams.app.sink import BatchSink
from streams.app.views import GLOBAL_SCOPE
from streams.core.policy_config import PolicyConfig
from streams.core.tenant import TenantState

T0_MS = 1_672_531_200_000
SNAPSHOTS = "t.estimators-changelog"


def completion(i: int, tenant: str = "acme", **changes: Any) -> bytes:
    record = {
        "schema_version": 1,
        "request_id": f"req-{i}",
        "tenant": tenant,
        "model": "large-70b",
        "region": "eu-north",
        "dataset": "gsm8k",
        "ts_ms": T0_MS + i,
        "latency_ms": 2500.0,
        "input_tokens": 180,
        "output_tokens": 150,
        "energy_j": 3600.0,
        "correct": False,
        **changes,
    }
    return orjson.dumps(record)


def with_policy(world: SideInputWorld, name: str, **config: Any) -> SideInputWorld:
    cfg = PolicyConfig(version="test", **config).to_dict()
    world.policy_store[GLOBAL_SCOPE] = orjson.dumps({"config": cfg, "policy_name": name})
    return world


def run(
    world: SideInputWorld, values: list[bytes | None], committing: bool = False
) -> FakeProducer:
    snapshots = EstimatorSnapshots(
        world.views, world.estimator_store, SNAPSHOTS, interval_s=0.0, clock=lambda: 1.0
    )
    handler = CompletionHandler(
        world.catalog,
        world.views,
        world.ingress,
        world.tenants,
        snapshots,
        world.dead_letters,
        world.counters,
        world.metrics,
        committing=lambda: committing,
        wall_ms=lambda: NOW_MS,
    )
    prod = FakeProducer()
    sink = BatchSink(prod)
    handler.handle([message("t.completions", v, i) for i, v in enumerate(values)], sink)
    asyncio.run(sink.flush())
    return prod


def test_completions_reach_the_estimator_the_metrics_and_the_snapshot() -> None:
    world = SideInputWorld()
    world.intensity_store[b"GB"] = orjson.dumps(
        [{"zone": "GB", "intensity_g_per_kwh": 200.0, "ts_ms": T0_MS}]
    )
    world.views.context(refresh_estimators=False)  # the intensity view in force
    prod = run(world, [completion(i) for i in range(3)])
    assert world.counters.completions == 3
    est = world.views.local_estimators[0]
    snapshot = orjson.loads(world.estimator_store[b"p0"])
    assert snapshot == orjson.loads(orjson.dumps(est.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY))
    assert [k for _, k, _ in prod.records(SNAPSHOTS)] == [b"p0"]
    (line,) = [x for x in world.metric_lines() if x.startswith("gar_completions,")]
    assert "count=3" in line
    # 3600 J = 1 Wh at 200 g/kWh and PUE 1.1: 0.22 g each (realised, not estimated).
    assert "co2_realised_g=0.66" in line


def test_an_unknown_model_is_one_dead_letter() -> None:
    world = SideInputWorld()
    prod = run(world, [completion(0, model="no-such-model"), completion(1)])
    (dead,) = [orjson.loads(v) for _, _, v in prod.records(DEAD_LETTER_TOPIC)]
    assert dead["reason"] == "unknown_model" and dead["request_id"] == "req-0"
    assert world.counters.completions == 1 and world.counters.dead_letters == 1


@pytest.mark.parametrize("committing", [False, True])
def test_graded_completions_fold_into_the_tenant_of_a_feedback_policy(committing: bool) -> None:
    world = with_policy(SideInputWorld(), "gar-pd", feedback_weight=0.3)
    world.tenants.put("acme", TenantState("acme", seq=4), 0)
    world.tenants.checkpoint(BatchSink(FakeProducer()))
    prod = run(world, [completion(0), completion(1, correct=None)], committing=committing)
    st = world.tenants.get("acme")
    assert st is not None and st.seq == 4
    assert st.surprise["gsm8k"] < 0  # a wrong answer: less accurate than estimated
    assert world.counters.feedback_folded == 1  # the ungraded one does not count
    written = [k for _, k, _ in prod.records("t.tenants")]
    # While a routed batch commits, the next batch's checkpoint carries the new state.
    assert written == ([] if committing else [b"t:acme"])


def test_a_policy_without_feedback_leaves_tenants_alone() -> None:
    world = with_policy(SideInputWorld(), "carbon-greedy", feedback_weight=0.3)
    world.tenants.put("acme", TenantState("acme", seq=4), 0)
    run(world, [completion(0)])
    st = world.tenants.get("acme")
    assert st is not None and not st.surprise and world.counters.feedback_folded == 0
