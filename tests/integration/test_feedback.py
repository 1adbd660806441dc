"""Realised correctness reaches gar-pd's accuracy dual in the worker (real broker, real worker).

Two tenants with identical request streams: graded completions arrive for one of them only.
The fold (``core.fold_feedback``) must land in that tenant's checkpointed state, and its next
decision must count it in the mu step (``accuracy_est`` = the twin's + the surprise), after
which the surprise is consumed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.worker import SMALL_CATALOG, produce, read_all, request_bytes, start_worker

from streams.core.catalog import Catalog
from streams.core.context import RoutingContext
from streams.core.inputs import Completion
from streams.core.policy_config import PolicyConfig
from streams.kafka.admin import ensure_topics
from streams.kafka.topics import TENANT_TABLE, TopicLayout, topic_specs
from streams.schema import completion_record, encode

pytestmark = pytest.mark.integration
MODELS = [m["name"] for m in SMALL_CATALOG["models"]]
T0_MS = 1_672_531_200_000
WEIGHT = 0.3
CONFIG = {
    "version": "fb-1",
    "adaptive_floor_alpha": None,
    "latency_slo_ms": 60_000.0,
    "feedback_weight": WEIGHT,
    "mu_pooled": False,  # per-tenant duals: the test is that one tenant's answers move only its mu
}


def _decided(settings: Any, lay: TopicLayout, n: int) -> list[dict[str, Any]]:
    out = asyncio.run(
        read_all(settings, [lay.decisions], lambda o: len(o[lay.decisions]) >= n, 60.0)
    )
    return [orjson.loads(m.value) for m in out[lay.decisions]]


def _tenant_states(settings: Any, topic: str, until: Any) -> dict[str, dict[str, Any]]:
    def latest(out: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
        return {
            m.key.decode()[2:]: orjson.loads(m.value)
            for m in out[topic]
            if m.value is not None and m.key.startswith(b"t:")
        }

    out = asyncio.run(read_all(settings, [topic], lambda o: until(latest(o)), 60.0))
    return latest(out)


def _expected_surprise(graded: list[Completion]) -> float:
    """The core's fold: weight x (0 - p) per wrong answer, p the serving model's scoring
    accuracy in the context in force (no completion observed before)."""
    ctx = RoutingContext.build(Catalog.from_dict(SMALL_CATALOG), PolicyConfig.from_dict(CONFIG))
    di = ctx.catalog.dataset_idx("gsm8k")
    expected = 0.0
    for c in graded:
        expected += WEIGHT * (0.0 - float(ctx.acc_score[ctx.catalog.model_index[c.model], di]))
    return expected


def test_graded_completions_move_mu_of_their_tenant_only(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings = settings_factory(
        topics={"partitions": 1}, worker={"catalog_path": str(catalog_path), "batch_max": 50}
    )
    asyncio.run(ensure_topics(settings, topic_specs(settings, MODELS)))
    lay = TopicLayout.from_settings(settings, MODELS)
    tenant_cl = f"{settings.app_id}-{TENANT_TABLE}-changelog"
    policy = {"schema_version": 1, "scope": "global", "policy_name": "gar-pd", "config": CONFIG}

    def twins(i: int, ts_ms: int) -> list[tuple[bytes, bytes]]:
        return [(t.encode(), request_bytes(i, t, ts_ms, request_id=f"{t}-{i}")) for t in "ab"]

    worker = start_worker(settings, tmp_path / "w.log")
    try:
        asyncio.run(produce(settings, lay.policy, [(b"global", orjson.dumps(policy))]))
        asyncio.run(
            read_all(
                settings,
                [f"{settings.app_id}-policy-changelog"],
                lambda o: len(next(iter(o.values()))) >= 1,
                60.0,
            )
        )
        first = [kv for i in range(10) for kv in twins(i, T0_MS + 1_000 * i)]
        asyncio.run(produce(settings, lay.requests, first))
        decided = _decided(settings, lay, 20)
        assert {d["policy_version"] for d in decided} == {"fb-1"}, worker.log()[-3000:]
        graded = [
            Completion(
                d["request_id"],
                "a",
                d["model"],
                d["region"],
                "gsm8k",
                T0_MS + 60_000 + i,
                800.0,
                120,
                150,
                50.0,
                False,
            )
            for i, d in enumerate(x for x in decided if x["tenant"] == "a")
        ]
        asyncio.run(
            produce(
                settings, lay.completions, [(b"a", encode(completion_record(c))) for c in graded]
            )
        )
        # Checkpointed while the router is idle (no batch committing). The completions may be
        # folded over more than one batch (each checkpointed): wait for all of them.
        expected = _expected_surprise(graded)
        states = _tenant_states(
            settings,
            tenant_cl,
            lambda s: (
                abs(s.get("a", {}).get("surprise", {}).get("gsm8k", 0.0) - expected)
                <= 1e-9 * abs(expected)
            ),
        )
        asyncio.run(produce(settings, lay.requests, twins(10, T0_MS + 120_000)))
        after = _decided(settings, lay, 22)
        final = _tenant_states(
            settings,
            tenant_cl,
            lambda s: s.get("a", {}).get("seq") == 11 and s.get("b", {}).get("seq") == 11,
        )
    finally:
        worker.stop()

    assert states["a"]["surprise"]["gsm8k"] == pytest.approx(expected, rel=1e-12)
    assert expected < 0
    assert "gsm8k" not in states.get("b", {}).get("surprise", {})

    last = {d["tenant"]: d for d in after if d["request_id"] in ("a-10", "b-10")}
    a, b = last["a"], last["b"]
    # Same history, same context: same duals before and the same choice ...
    assert a["duals_before"] == b["duals_before"]
    assert (a["model"], a["region"]) == (b["model"], b["region"])
    # ... but a's mu step counts the realised (worse) correctness: mu rises more.
    # (decisions.v2: accuracy_est is the scoring accuracy, feedback what the step added)
    assert a["accuracy_est"] == b["accuracy_est"] and "feedback" not in b
    assert a["feedback"] == pytest.approx(expected, abs=1e-12)
    assert a["duals_after"][1] > b["duals_after"][1]  # [lambda, mu, nu]
    # Consumed by that decision.
    assert final["a"]["surprise"].get("gsm8k", 0.0) == 0.0
