"""Tenant isolation, differential: the same victim traffic is routed twice on fresh apps, once
alone and once interleaved with an attacker tenant's traffic on the same partition (a budget-
burning flood, extreme per-request overrides, malformed inputs, policy-shaped payloads on the
requests topic, and requests that reuse the victim's request ids before the victim sends them).
Every victim decision must come out identical (choice, CO2, duals before/after, budget window,
floor, sequence), and the policy may change only through the policy topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from faults.helpers import (
    T0_MS,
    account,
    alive,
    create_topics,
    latest_tenant_states,
    layout,
    produce,
    publish_policy,
    read_until,
    request,
    start_worker,
)
from streams.config import Settings
from streams.core.policy_config import PolicyConfig

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N_VICTIM = 300
POLICY = PolicyConfig(
    version="iso-v1",
    budgets_g={"victim": 2.0, "mallory": 0.01},
    budget_window_ms=3_600_000,
    budget_buckets=60,
    adaptive_floor_alpha=None,
)
COMPARED = (
    "model",
    "region",
    "reason",
    "co2_g",
    "duals_before",
    "duals_after",
    "window_spend_g_before",
    "window_count_before",
    "tenant_seq",
    "floor",
    "in_window",
    "policy_version",
    "accuracy_est",
    "intensity_stale",
)


def _victim() -> list[tuple[bytes | None, bytes]]:
    return [
        (b"victim", request(i, "victim", T0_MS + i * 1_000, prefix="v")) for i in range(N_VICTIM)
    ]


def _attack() -> list[tuple[bytes | None, bytes]]:
    out: list[tuple[bytes | None, bytes]] = []
    m = b"mallory"
    for i in range(N_VICTIM):
        # Budget burner with extreme overrides, same event-time range as the victim.
        out.append(
            (
                m,
                request(
                    i,
                    "mallory",
                    T0_MS + i * 1_000,
                    prefix="m",
                    input_tokens=1_500_000,
                    floor=1.0,
                    latency_cap_ms=1.0,
                ),
            )
        )
        if i % 3 == 0:  # the victim's own future request ids, sent first
            out.append((m, request(i, "mallory", T0_MS + i * 1_000, prefix="v")))
        if i % 10 == 0:  # malformed, claiming the victim's tenant
            out.append((m, request(i, "victim", T0_MS, prefix="x")[:-9]))
            out.append((m, request(i, "victim", T0_MS, prefix="y", budget_g=1e9)))
    # Policy-shaped payloads anywhere but the policy topic are just bad requests.
    out.append(
        (
            m,
            orjson.dumps(
                {
                    "schema_version": 1,
                    "scope": "global",
                    "policy_name": "gar-pd",
                    "config": {"version": "evil", "budgets_g": {"mallory": 1e12}},
                }
            ),
        )
    )
    return out


def _run(
    settings: Settings, tmp: Path, items: list[tuple[bytes | None, bytes]], name: str
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], Any]:
    create_topics(settings)
    lay = layout(settings)
    worker = start_worker(settings, tmp / f"{name}.log")
    try:
        publish_policy(settings, POLICY)
        positions = produce(settings, lay.requests, items)
        reader = read_until(
            settings,
            [lay.decisions, lay.dead_letter],
            lambda r: len(r.accounted) >= len(positions),
            90.0,
            lay,
        )
        assert alive(worker), worker.log()[-3000:]
        latest = latest_tenant_states(settings)
    finally:
        worker.stop()
    acc = account(reader, lay)
    victim = {d["request_id"]: d for d in acc.decisions if d["tenant"] == "victim"}
    return victim, latest, acc


def test_one_tenant_cannot_move_another_tenants_budget_duals_or_floors(
    settings_factory: Any, catalog_path: Path, tmp_path: Path, unique_id: str
) -> None:
    def world(tag: str) -> Settings:
        s: Settings = settings_factory(
            app_id=f"gar-test-{unique_id}-{tag}",
            topics={"prefix": f"test.{unique_id}.{tag}.", "partitions": 1},
            worker={"catalog_path": str(catalog_path), "batch_max": 64},
        )
        return s

    alone, alone_state, _ = _run(world("alone"), tmp_path, _victim(), "alone")
    attack = _attack()
    mixed = []  # attacker first in each slice, so its id reuse always comes before the victim
    victim = _victim()
    step = len(attack) // len(victim) + 1
    for i, v in enumerate(victim):
        mixed += [*attack[i * step : (i + 1) * step], v]
    mixed += attack[len(victim) * step :]
    attacked, attacked_state, acc = _run(world("attacked"), tmp_path, mixed, "attacked")

    assert len(alone) == N_VICTIM
    lost = sorted(set(alone) - set(attacked))
    assert not lost, f"{len(lost)} victim requests got no decision under attack, e.g. {lost[:3]}"
    diffs = [
        (rid, k) for rid, d in alone.items() for k in COMPARED if attacked[rid].get(k) != d.get(k)
    ]
    assert not diffs, diffs[:10]
    for key in ("lambda", "mu", "nu", "window_spend_g", "window_count", "seq", "buckets"):
        assert attacked_state["victim"][key] == alone_state["victim"][key], key
    # The attacker did burn its own budget, and the policy only came from the policy topic.
    assert attacked_state["mallory"]["lambda"] > 0
    assert {d["policy_version"] for d in acc.decisions} == {"iso-v1"}
    reasons = [v[0]["reason"] for v in acc.dead.values()]
    assert reasons.count("unknown_field") >= N_VICTIM // 10 + 1  # budget_g field, policy shape
    print(
        f"\nisolation: victim={len(alone)} attacker_inputs={len(attack)} "
        f"decisions={acc.decision_records} dead_letters={acc.dead_letter_records} "
        f"victim_lambda={attacked_state['victim']['lambda']:.4g} "
        f"mallory_lambda={attacked_state['mallory']['lambda']:.4g}"
    )
