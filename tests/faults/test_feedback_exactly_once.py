"""Correctness feedback is exactly once across a worker SIGKILL (real broker).

The same input runs twice on fresh topics: requests are decided, then graded completions
arrive (a SIGKILL and a restart in the middle of them in the second run), then one more request
per tenant, whose gar-pd mu step counts the tenant's pending feedback. A completion counted
twice (re-delivered after the kill) or not at all (its fold lost with the worker) moves that
tenant's mu; it must equal the uninterrupted run's.

What the comparison isolates: the counting. The catalog's correctness priors are made so strong
(strength 1e9) that the estimators, which are approximately once under failure by design, cannot
move the scoring accuracy, and the last requests have one candidate each (allow lists).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.worker import SMALL_CATALOG

from faults.helpers import (
    T0_MS,
    TopicReader,
    alive,
    changelog,
    create_topics,
    group_offsets,
    layout,
    produce,
    produce_tracked,
    publish_policy,
    read_until,
    request,
    start_worker,
)
from streams.config import Settings
from streams.core.inputs import Completion
from streams.core.policy_config import PolicyConfig
from streams.core.replay import duals_of
from streams.schema import completion_record, encode

pytestmark = [pytest.mark.integration, pytest.mark.faults]

TENANTS = [f"tenant-{i}" for i in range(4)]
N_REQUESTS = 400
POLICY = PolicyConfig(
    version="fb-once-1",
    feedback_weight=0.3,
    floors={"gsm8k": 0.95},
    adaptive_floor_alpha=None,
    latency_slo_ms=60_000.0,
)


def _catalog(path: Path) -> Path:
    cat = orjson.loads(orjson.dumps(SMALL_CATALOG))
    for m in cat["models"]:
        m["correctness_prior"]["gsm8k"]["strength"] = 1e9
    path.write_bytes(orjson.dumps(cat))
    return path


async def _committed(settings: Settings, topic: str) -> int:
    """The worker group's committed offset on completions partition 0 (-1: none yet)."""
    return (await group_offsets(settings, topic)).get(0, -1)


def _run(settings: Settings, tmp: Path, kill: bool, pooled: bool) -> dict[str, dict[str, Any]]:
    create_topics(settings)
    lay = layout(settings)
    worker = start_worker(settings, tmp / "w0.log")
    try:
        publish_policy(settings, replace(POLICY, mu_pooled=pooled))
        # 1. Requests, all decided.
        items = [
            (t.encode(), request(i, t, T0_MS + i * 1_000))
            for i in range(N_REQUESTS)
            for t in [TENANTS[i % len(TENANTS)]]
        ]
        produce(settings, lay.requests, items)
        decided = read_until(
            settings, [lay.decisions], lambda r: len(r.decided_ids) >= N_REQUESTS, 90.0, lay
        )
        decisions = [orjson.loads(m.value) for m in decided.records[lay.decisions]]
        # 2. A graded completion for each decision, some wrong, paced: the kill lands mid-way.
        graded = []
        for i, d in enumerate(decisions):
            c = Completion(
                d["request_id"], d["tenant"], d["model"], d["region"], "gsm8k",
                T0_MS + 600_000 + i, 800.0, 120, 150, None, i % 3 != 0,
            )  # fmt: skip
            graded.append((d["tenant"].encode(), encode(completion_record(c))))

        async def feed() -> int:
            producing = asyncio.create_task(
                produce_tracked(settings, lay.completions, graded, pace=lambda i: 0.004)
            )
            if kill:
                await kill_between_write_and_commit()
            return len(await producing)

        async def kill_between_write_and_commit() -> None:
            """SIGKILL once folds are written (the tenant changelog's positions) that Faust has
            not committed yet: the restarted worker must read them again."""
            reader = TopicReader(settings, [changelog(settings, "tenant_state")])
            await reader.start()
            try:
                deadline = time.monotonic() + 60.0
                while time.monotonic() < deadline:
                    await reader.poll(50)
                    folded = max(
                        (
                            int(orjson.loads(m.value).get("completions_next_offset", 0))
                            for m in reader.records[reader.topics[0]]
                            if m.value is not None
                        ),
                        default=0,
                    )
                    if folded - await _committed(settings, lay.completions) >= 40:
                        break
            finally:
                await reader.stop()
            worker.kill()

        n = asyncio.run(feed())
        if kill:
            worker = start_worker(settings, tmp / "w1.log")
        deadline = time.monotonic() + 90.0
        while asyncio.run(_committed(settings, lay.completions)) < n:
            assert time.monotonic() < deadline, "completions were not all consumed"
            assert alive(worker), worker.log()[-3000:]
            time.sleep(0.5)
        # 3. One single-candidate request per tenant: its mu step counts the pending feedback.
        last = [
            (
                t.encode(),
                request(
                    N_REQUESTS + k, t, T0_MS + 900_000,
                    allow_models=["large-70b"], allow_regions=["eu-north"],
                ),
            )
            for k, t in enumerate(TENANTS)
        ]  # fmt: skip
        produce(settings, lay.requests, last)
        want = {f"req-{N_REQUESTS + k:06d}" for k in range(len(TENANTS))}
        out = read_until(settings, [lay.decisions], lambda r: want <= r.decided_ids, 90.0, lay)
        assert alive(worker), worker.log()[-3000:]
    finally:
        worker.stop()
    if kill:  # the restarted worker did read folded completions again (else: a lucky kill)
        assert "already folded, skipped" in worker.log(), worker.log()[-3000:]
    final = [orjson.loads(m.value) for m in out.records[lay.decisions]]
    return {d["tenant"]: d for d in final if d["request_id"] in want}


# Pooled: the feedback of every tenant goes into the partition's scope state (its own
# completions position), and the first of the last requests consumes it all.
@pytest.mark.parametrize("pooled", [False, True], ids=["per-tenant", "pooled"])
def test_mu_after_a_kill_equals_mu_of_an_uninterrupted_run(
    settings_factory: Any, tmp_path: Path, unique_id: str, pooled: bool
) -> None:
    catalog = _catalog(tmp_path / "catalog.json")

    def world(tag: str) -> Settings:
        s: Settings = settings_factory(
            app_id=f"gar-test-{unique_id}-{tag}",
            topics={"prefix": f"test.{unique_id}.{tag}.", "partitions": 1},
            worker={"catalog_path": str(catalog), "batch_max": 100},
        )
        return s

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    calm = _run(world("calm"), tmp_path / "a", kill=False, pooled=pooled)
    killed = _run(world("killed"), tmp_path / "b", kill=True, pooled=pooled)
    assert set(calm) == set(killed) == set(TENANTS)
    if pooled:
        assert {d.get("mu_scope") for d in [*calm.values(), *killed.values()]} == {"p0"}
        # the scope's pending feedback was counted (by the first of the last decisions)
        assert any(d.get("feedback") for d in calm.values())
    for t in TENANTS:
        a, b = calm[t], killed[t]
        assert duals_of(a["duals_before"]).mu == pytest.approx(
            duals_of(b["duals_before"]).mu, rel=1e-6
        )
        # The accuracy the mu step counted: the candidate's accuracy plus the tenant's pending
        # surprise (decisions.v2 records it as "feedback" when it differs from accuracy_est).
        counted_a = a.get("feedback", a["accuracy_est"])
        counted_b = b.get("feedback", b["accuracy_est"])
        assert counted_b == pytest.approx(counted_a, rel=1e-6, abs=1e-9), t
        assert duals_of(b["duals_after"]).mu == pytest.approx(
            duals_of(a["duals_after"]).mu, rel=1e-6
        ), t
    print(
        "\nfeedback exactly once: mu after "
        + ", ".join(f"{t}={duals_of(calm[t]['duals_after']).mu:.6f}" for t in TENANTS)
        + " in both runs"
    )
