"""Size limits and unknown fields on the side inputs, end to end (the request topic is covered by
the poison flood): oversized, unknown-field, unknown-name and wrong-version records on
completions, carbon-intensity and policy are each dead-lettered with their reason and source
topic, and none of them changes what the router prices or which policy it runs: the policy
changes only through a valid record on the policy topic."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.audit import audited_decisions

from faults.helpers import (
    T0_MS,
    alive,
    create_topics,
    layout,
    produce,
    publish_intensity,
    publish_policy,
    read_until,
    request,
    start_worker,
)
from streams.core.inputs import Completion
from streams.core.intensity import IntensityReading
from streams.core.policy_config import PolicyConfig
from streams.ingress.limits import DEFAULT_LIMITS as LIM
from streams.schema import completion_record, intensity_record

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def _bad_side_inputs() -> dict[str, list[tuple[bytes, str]]]:
    comp = completion_record(
        Completion("c-1", "t0", "small-8b", "eu-north", "gsm8k", T0_MS, 500.0, 100, 100, 10.0, True)
    )
    inten = intensity_record(IntensityReading("GB", 5.0, T0_MS + 1, "evil"))
    pol: dict[str, Any] = {
        "schema_version": 1,
        "scope": "global",
        "policy_name": "gar-pd",
        "config": {"version": "evil-v9", "default_budget_g": 1e12},
    }
    big = "x" * LIM.max_policy_bytes
    return {
        "completions": [
            (orjson.dumps({**comp, "pad": "x" * LIM.max_completion_bytes}), "too_large"),
            (orjson.dumps({**comp, "extra": 1}), "unknown_field"),
            (orjson.dumps({**comp, "model": "no-such-model"}), "unknown_model"),
            (orjson.dumps({**comp, "schema_version": 2}), "unsupported_schema_version"),
            (orjson.dumps({**comp, "latency_ms": -1.0}), "out_of_range"),
        ],
        "carbon-intensity": [
            (orjson.dumps({**inten, "source": "x" * LIM.max_intensity_bytes}), "string_too_long"),
            (orjson.dumps({**inten, "extra": 1}), "unknown_field"),
            (orjson.dumps({**inten, "intensity_g_per_kwh": 1e9}), "out_of_range"),
            (orjson.dumps({**inten, "schema_version": 0}), "unsupported_schema_version"),
        ],
        "policy": [
            (orjson.dumps({**pol, "config": {**pol["config"], "pad": big}}), "too_large"),
            (orjson.dumps({**pol, "config": {**pol["config"], "evil": True}}), "unknown_field"),
            (orjson.dumps({**pol, "scope": "tenant:mallory"}), "bad_format"),
            (orjson.dumps({**pol, "schema_version": 7}), "unsupported_schema_version"),
            (orjson.dumps({**pol, "policy_name": "no-such-policy"}), "out_of_range"),
        ],
    }


def test_hostile_side_inputs_are_dead_lettered_and_change_nothing(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings = settings_factory(
        topics={"partitions": 2}, worker={"catalog_path": str(catalog_path), "batch_max": 50}
    )
    create_topics(settings)
    lay = layout(settings)
    topic_of = {
        "completions": lay.completions,
        "carbon-intensity": lay.carbon_intensity,
        "policy": lay.policy,
    }
    bad = _bad_side_inputs()
    n_bad = sum(len(v) for v in bad.values())
    worker = start_worker(settings, tmp_path / "w.log")
    try:
        publish_policy(settings, PolicyConfig(version="good-v1", adaptive_floor_alpha=None))
        publish_intensity(
            settings,
            [
                IntensityReading("GB", 300.0, T0_MS, "test"),
                IntensityReading("US-MIDA-PJM", 400.0, T0_MS, "test"),
            ],
        )
        for name, items in bad.items():
            produce(settings, topic_of[name], [(b"k", raw) for raw, _reason in items])
        # A zone no catalog region uses is kept (a shared feed publishes many zones), but it
        # can price nothing.
        produce(
            settings,
            lay.carbon_intensity,
            [
                (
                    b"ZZ",
                    orjson.dumps(
                        intensity_record(IntensityReading("NO-SUCH-ZONE", 1.0, T0_MS + 2, "evil"))
                    ),
                )
            ],
        )
        dead = read_until(
            settings, [lay.dead_letter], lambda r: len(r.records[lay.dead_letter]) >= n_bad, 60.0
        )
        produce(
            settings,
            lay.requests,
            [(b"t0", request(i, "t0", T0_MS + 60_000 + i)) for i in range(20)],
        )
        out = read_until(settings, [lay.decisions], lambda r: len(r.decided_ids) >= 20, 60.0, lay)
        assert alive(worker), worker.log()[-3000:]
    finally:
        worker.stop()
    records = [orjson.loads(m.value) for m in dead.records[lay.dead_letter]]
    assert len(records) == n_bad
    got = Counter((r["source"]["topic"], r["reason"]) for r in records)
    want = Counter((topic_of[name], reason) for name, items in bad.items() for _, reason in items)
    assert got == want
    assert all(r["stage"] and r["message"] and r["original_size_bytes"] > 0 for r in records)
    assert len(out.records[lay.decisions]) >= 20
    # The hostile inputs never reached a routing context: every decision re-derives from its
    # context record, whose prices and estimator snapshot are the good ones.
    decisions = audited_decisions(settings)
    assert {d["policy_version"] for d in decisions} == {"good-v1"}  # "evil-v9" never applied
    for d in decisions:  # the hostile 5 g/kWh reading for GB never reached the prices
        zi = d["intensity"]
        assert zi["intensity_g_per_kwh"] == {"GB": 300.0, "US-MIDA-PJM": 400.0}[zi["zone"]]
    assert {d["estimator_seq"] for d in decisions} == {0}  # no bad completion was counted
    print(f"\nside inputs: dead_letters={dict(got)} decisions={len(decisions)}")
