"""Carbon intensity, policy and completions reach the decisions (real broker, real worker)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.audit import audited_decisions
from support.worker import SMALL_CATALOG, produce, read_all, request_bytes, start_worker

from streams.core.inputs import Completion
from streams.core.intensity import IntensityReading
from streams.kafka.admin import ensure_topics
from streams.kafka.topics import TopicLayout, topic_specs
from streams.schema import completion_record, encode, intensity_record

pytestmark = pytest.mark.integration
MODELS = [m["name"] for m in SMALL_CATALOG["models"]]
T0_MS = 1_672_531_200_000


def _readings() -> list[IntensityReading]:
    """GB 45x greener than PJM: every decision goes to eu-north."""
    return [
        IntensityReading("GB", 20.0, T0_MS, "test", "average", False),
        IntensityReading("US-MIDA-PJM", 900.0, T0_MS, "test", "average", False),
    ]


def _policy(version: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "scope": "global",
        "policy_name": "gar-pd",
        "config": {"version": version, "adaptive_floor_alpha": None, "latency_slo_ms": 60_000.0},
    }


def _until_n(topic: str, n: int) -> Any:
    return lambda out: len(out[topic]) >= n


def _cold_start(
    settings: Any, lay: TopicLayout, policy: dict[str, Any], n_requests: int, tmp_path: Path
) -> tuple[list[Any], str]:
    """The readings, ``policy`` and ``n_requests`` requests of tenant a are on their topics
    before a worker starts: the decision records it wrote, and its log."""
    asyncio.run(
        produce(
            settings,
            lay.carbon_intensity,
            [(r.zone.encode(), encode(intensity_record(r))) for r in _readings()],
        )
    )
    asyncio.run(produce(settings, lay.policy, [(b"global", orjson.dumps(policy))]))
    asyncio.run(
        produce(
            settings,
            lay.requests,
            [(b"a", request_bytes(i, "a", T0_MS + 60_000 + i)) for i in range(n_requests)],
        )
    )
    worker = start_worker(settings, tmp_path / "w.log")
    try:
        done = _until_n(lay.decisions, n_requests)
        out = asyncio.run(read_all(settings, [lay.decisions], done, 90.0))
    finally:
        worker.stop()
    return out[lay.decisions], worker.log()


def test_intensity_policy_and_completions_shape_decisions(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings = settings_factory(
        worker={
            "catalog_path": str(catalog_path),
            "batch_max": 50,
            "estimator_publish_interval_ms": 200,
        }
    )
    asyncio.run(ensure_topics(settings, topic_specs(settings, MODELS)))
    lay = TopicLayout.from_settings(settings, MODELS)
    cl = f"{settings.app_id}-{{}}-changelog"
    readings, policy = _readings(), _policy("test-v7")
    worker = start_worker(settings, tmp_path / "w.log")
    try:
        asyncio.run(
            produce(
                settings,
                lay.carbon_intensity,
                [(r.zone.encode(), encode(intensity_record(r))) for r in readings],
            )
        )
        asyncio.run(produce(settings, lay.policy, [(b"global", orjson.dumps(policy))]))
        asyncio.run(
            read_all(settings, [cl.format("intensity")], _until_n(cl.format("intensity"), 2), 60.0)
        )
        asyncio.run(
            read_all(settings, [cl.format("policy")], _until_n(cl.format("policy"), 1), 60.0)
        )
        first = [(b"a", request_bytes(i, "a", T0_MS + 60_000 + i)) for i in range(20)]
        asyncio.run(produce(settings, lay.requests, first))
        out = asyncio.run(read_all(settings, [lay.decisions], _until_n(lay.decisions, 20), 60.0))
        decisions = [orjson.loads(m.value) for m in out[lay.decisions]]
        # Completions for the chosen deployments feed the estimators (shared via GlobalTable).
        comps = [
            Completion(
                d["request_id"],
                "a",
                d["model"],
                d["region"],
                "gsm8k",
                T0_MS + 120_000 + i,
                800.0,
                120,
                150,
                50.0,
                True,
            )
            for i, d in enumerate(decisions)
        ]
        asyncio.run(
            produce(
                settings, lay.completions, [(b"a", encode(completion_record(c))) for c in comps]
            )
        )
        asyncio.run(
            read_all(
                settings, [cl.format("estimators")], _until_n(cl.format("estimators"), 1), 60.0
            )
        )
        time.sleep(1.0)  # one estimator refresh interval on the router side
        second = [(b"a", request_bytes(100 + i, "a", T0_MS + 180_000 + i)) for i in range(20)]
        asyncio.run(produce(settings, lay.requests, second))
        out = asyncio.run(read_all(settings, [lay.decisions], _until_n(lay.decisions, 40), 60.0))
    finally:
        worker.stop()
    assert len(out[lay.decisions]) == 40
    # The records name their context and reading; the audit rebuilds what they priced with.
    decisions = audited_decisions(settings)
    assert len(decisions) == 40
    offsets = {"GB": 0, "US-MIDA-PJM": 1}  # both readings went to the single partition
    for d in decisions:
        assert d["policy_version"] == "test-v7"
        zi = d["intensity"]
        assert zi["source"] == "test" and not zi["stale"]
        assert zi["source_offset"] == offsets[zi["zone"]]
        assert zi["reading_g_per_kwh"] == (20.0 if zi["zone"] == "GB" else 900.0)
    # 45x greener grid: every decision goes to the GB region.
    assert {d["region"] for d in decisions} == {"eu-north"}
    late = [d for d in decisions if d["ts_ms"] >= T0_MS + 180_000]
    assert all(d["estimator_seq"] == len(comps) for d in late)
    assert all(d["estimator_seq"] == 0 for d in decisions if d not in late)


def test_policy_and_intensity_published_before_start_price_the_first_decision(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    """Cold start with everything already waiting on the topics (the demo's order): the worker
    routes nothing until the control records are applied (streams/app/control_gate.py)."""
    settings = settings_factory(worker={"catalog_path": str(catalog_path), "batch_max": 50})
    asyncio.run(ensure_topics(settings, topic_specs(settings, MODELS)))
    lay = TopicLayout.from_settings(settings, MODELS)
    records, log = _cold_start(settings, lay, _policy("cold-v1"), 30, tmp_path)
    decisions = [orjson.loads(m.value) for m in records]
    assert len(decisions) == 30
    assert {d["policy_version"] for d in decisions} == {"cold-v1"}, log[-3000:]
    assert not any(d["intensity_stale"] for d in decisions)
    assert {d["region"] for d in decisions} == {"eu-north"}
    assert "control topics applied" in log


def test_a_published_mode_switches_the_worker_to_that_preset(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    """Publishing ``mode: strict`` applies the strict preset (hard floor with a margin, LCB
    accuracies), not just its label: with a 0.85 floor only large-70b's lower bound (0.912)
    clears 0.86, so every request goes there. Under the balanced default the same floor is
    soft and the cheaper models stay feasible."""
    settings = settings_factory(worker={"catalog_path": str(catalog_path), "batch_max": 50})
    asyncio.run(ensure_topics(settings, topic_specs(settings, MODELS)))
    lay = TopicLayout.from_settings(settings, MODELS)
    policy = {
        "schema_version": 1,
        "scope": "global",
        "config": {
            "version": "strict-v1",
            "mode": "strict",
            "floors": {"gsm8k": 0.85},
            "adaptive_floor_alpha": None,
            "latency_slo_ms": 60_000.0,
        },
    }
    records, _ = _cold_start(settings, lay, policy, 20, tmp_path)
    assert len(records) == 20
    # Expanded by the audit from each decision's context: what the worker priced with.
    decisions = audited_decisions(settings)
    assert len(decisions) == 20
    for d in decisions:
        assert (d["policy_version"], d["mode"]) == ("strict-v1", "strict")
        assert d["model"] == "large-70b"
        accuracy = d["candidates"]["accuracy"]
        assert all(accuracy[k] >= 0.86 for k in d["candidates"]["feasible"])
        assert max(accuracy) < 0.94  # lower confidence bounds, not the prior means
